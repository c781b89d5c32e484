"""Structured pruning: channel groups on the graph patterns, really removed, and searched as units
with a size table that stays exact when one layer's choice changes another's shape."""
import copy

import numpy as np
import pytest
import torch
from torch import nn

from cost_models import build_cost_table, load_target, make_cost_model
from hwsearch.export import artifact
from hwsearch.compression import Option, apply_, capture_inputs, layer_nbytes
from hwsearch.compression.channels import (ChannelChoice, UnitOption, channel_groups, disjoint_groups, prune_channels_,
                                        select_channels)
from hwsearch.graph import LayerGraph
from hwsearch.proxy import build_proxy_table
from hwsearch.study import baseline_index, merge_units, search_units

SPEC = {"builder": "tests.test_channels:Branchy"}


class Branchy(nn.Module):
    """A residual add, a depthwise conv, a concatenation and a flatten into a linear layer."""

    def __init__(self):
        super().__init__()
        self.stem, self.stem_bn = nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.a, self.a_bn = nn.Conv2d(8, 12, 3, padding=1, bias=False), nn.BatchNorm2d(12)
        self.b, self.b_bn = nn.Conv2d(12, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.c, self.c_bn = nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16)
        self.dw, self.dw_bn = nn.Conv2d(16, 16, 3, padding=1, groups=16, bias=False), nn.BatchNorm2d(16)
        self.d = nn.Conv2d(24, 10, 3, padding=1)
        self.fc = nn.Linear(10 * 4 * 4, 10)

    def forward(self, x):                                              # (N, 1, 8, 8)
        x = torch.relu(self.stem_bn(self.stem(x)))
        x = torch.relu(x + self.b_bn(self.b(torch.relu(self.a_bn(self.a(x))))))
        y = torch.relu(self.dw_bn(self.dw(torch.relu(self.c_bn(self.c(x))))))
        z = torch.max_pool2d(torch.relu(self.d(torch.cat([x, y], dim=1))), 2)   # (N, 10, 4, 4)
        return self.fc(torch.flatten(z, 1))


@pytest.fixture(scope="module")
def branchy():
    torch.manual_seed(0)
    model = Branchy()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 1.5)
    model.eval()
    x = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    return model, LayerGraph.trace(model, x[:1]), x


def _groups(model, graph):
    return {g.name: g for g in channel_groups(model, graph)}


def test_channel_groups_follow_adds_depthwise_convs_concatenations_and_flattens(branchy):
    model, graph, _ = branchy
    groups = _groups(model, graph)
    assert set(groups["stem"].producers) == {"stem", "b"}                       # tied by the residual add
    assert set(groups["stem"].norms) == {"stem_bn", "b_bn"}
    assert {c[:2] for c in groups["stem"].consumers} == {("a", 0), ("c", 0), ("d", 0)}
    assert groups["c"].depthwise == ("dw",) and groups["c"].consumers == (("d", 8, 1),)   # after x in the cat
    assert groups["d"].consumers == (("fc", 0, 16),)                             # 4 x 4 features per channel
    assert "fc" not in groups                                                   # its channels are the output
    assert [g.name for g in disjoint_groups(list(groups.values()))] == ["a", "d"]


@pytest.mark.parametrize("name", ["stem", "a", "c", "d"])
@pytest.mark.parametrize("criterion", ["l1", "reconstruction"])
def test_pruned_models_run_are_smaller_and_stay_close(branchy, name, criterion):
    model, graph, x = branchy
    group = _groups(model, graph)[name]
    inputs = capture_inputs(model, list(group.layers), x)
    kept = select_channels(model, group, group.channels // 2, criterion, inputs)
    assert len(kept) == group.channels // 2 and list(kept) == sorted(set(kept))
    pruned = prune_channels_(copy.deepcopy(model), ChannelChoice(group, kept), inputs=inputs,
                             refit=criterion == "reconstruction")
    with torch.no_grad():
        y, y_pruned = model(x), pruned(x)
    assert y_pruned.shape == y.shape
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert float((y - y_pruned).norm() / y.norm()) < 0.9
    for producer in group.producers:
        assert pruned.get_submodule(producer).weight.shape[0] == group.channels // 2


def test_l1_keeps_the_largest_filters_and_reconstruction_the_channels_consumers_use(branchy):
    model, graph, x = branchy
    model = copy.deepcopy(model)
    group = _groups(model, graph)["a"]
    with torch.no_grad():
        model.a.weight[3] *= 10.0           # the largest filter ...
        model.b.weight[:, 3] = 0.0          # ... which the consumer ignores
    inputs = capture_inputs(model, list(group.layers), x)
    assert 3 in select_channels(model, group, 6, "l1")
    assert 3 not in select_channels(model, group, 6, "reconstruction", inputs)


def test_refitting_the_consumers_reconstructs_better_than_dropping_channels(branchy):
    model, graph, x = branchy
    group = _groups(model, graph)["a"]
    inputs = capture_inputs(model, list(group.layers), x)
    kept = select_channels(model, group, 6, "reconstruction", inputs)
    errors = []
    for refit in (False, True):
        pruned = prune_channels_(copy.deepcopy(model), ChannelChoice(group, kept), inputs=inputs, refit=refit)
        with torch.no_grad():
            errors.append(float((model(x) - pruned(x)).norm()))
    assert errors[1] < errors[0]


@pytest.fixture(scope="module")
def tables(branchy):
    model, graph, x = branchy
    layers = graph.compressible()
    options = {l.name: [Option(), Option(bits=8), Option(bits=4, codebook=16)] for l in layers}
    proxy = build_proxy_table(model, layers, options, x)
    names = [l.name for l in layers]
    fixed = artifact.fixed_bytes(model, model_spec=SPEC, layer_names=names)
    cost_model = make_cost_model("analytical", load_target("cortex-a76"))
    costs = build_cost_table(cost_model, layers, options, fixed, graph, proxy.sizes)
    units = search_units(model, graph)
    merged = merge_units(model, layers, units, proxy, costs, cost_model, x)
    return merged, units


def test_units_replace_their_layers_in_the_tables(tables, branchy):
    (proxy, costs), units = tables
    assert [u.key for u in units] == ["a+b", "d+fc"]
    assert list(proxy.options) == ["stem", "a+b", "c", "dw", "d+fc"] == list(costs.values)
    for unit in units:
        options = proxy.options[unit.key]
        assert len({o.label for o in options}) == len(options)
        assert proxy.errors[unit.key][baseline_index(options)] == 0.0
        assert any(o.keep is not None for o in options) and any(o.keep is None for o in options)
    pruned = [i for i, o in enumerate(proxy.options["a+b"]) if o.keep == 6 and o.members[0] == Option()]
    assert (costs.column("a+b", "macs")[pruned] < costs.column("a+b", "macs")[0]).all()


def test_the_size_table_is_the_file_size_when_pruning_changes_other_layers_shapes(tables, branchy, tmp_path):
    """A unit pruned to half its channels shrinks its consumer: the file must still be the promised size,
    and reload to the same outputs."""
    (proxy, costs), units = tables
    model, graph, x = branchy
    names = [l.name for l in graph.compressible()]
    rng = np.random.default_rng(0)
    for trial in range(6):
        choice = {key: int(rng.integers(len(opts))) for key, opts in proxy.options.items()}
        if trial == 0:
            choice = {key: next((i for i, o in enumerate(opts) if getattr(o, "keep", None)), 0)
                      for key, opts in proxy.options.items()}
        plan = {key: proxy.options[key][i] for key, i in choice.items()}
        compressed = apply_(copy.deepcopy(model), plan, calibration=x).eval()
        written = artifact.save(compressed, tmp_path / "m.hws", model_spec=SPEC, layer_names=names)
        assert written == costs.totals(choice)["size_bytes"] == (tmp_path / "m.hws").stat().st_size
        loaded, _ = artifact.load(tmp_path / "m.hws", trust_code=True)
        with torch.no_grad():
            assert torch.equal(loaded(x), compressed(x))
        for key, option in plan.items():
            if isinstance(option, UnitOption) and option.keep is not None:
                assert compressed.get_submodule(option.group.producers[0]).channels is not None
                assert proxy.sizes[key][choice[key]] == sum(layer_nbytes(compressed.get_submodule(n)) for n in
                                                            option.group.layers)


def test_unit_options_round_trip_through_json(tables):
    (proxy, _), _ = tables
    for option in proxy.options["d+fc"]:
        assert UnitOption.from_dict(option.to_dict()) == option
