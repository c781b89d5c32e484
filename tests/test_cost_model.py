import pytest
import yaml

from cost_models import Cost, load_target, make_cost_model
from hwsearch.layer_graph import Layer, LayerGraph
from hwsearch.options import Option, layer_options

FC = Layer("fc", "linear", (10, 512), (1, 512), (1, 10), has_bias=True, macs=5120)


@pytest.fixture(params=["analytical"])
def cost_model(request):
    return make_cost_model(request.param, load_target("cortex-a76"))


def test_golden_cortex_a76_linear_layer(cost_model):
    cost = cost_model.layer_cost(FC, Option())
    weight_bytes = 7 + 4 + 5120 * 4                       # record + kept count + fp32 values
    assert cost.macs == 5120 and cost.weight_bytes == weight_bytes
    assert cost.dram_bytes == weight_bytes                # activations (2,088 B) stay on chip
    compute_s, dram_s = 5120 / (8 * 2.84e9), weight_bytes / 34.1e9
    assert cost.latency_s == pytest.approx(max(compute_s, dram_s))
    energy_pj = 5120 * 4.6 + weight_bytes * 160 + (weight_bytes + (512 + 10) * 4) * 1.25
    assert cost.energy_j == pytest.approx(energy_pj * 1e-12)


def test_golden_int8_path_and_low_rank(cost_model):
    cost = cost_model.layer_cost(FC, Option(rank=5, bits=8))
    assert cost.macs == 5 * 512 + 10 * 5
    assert cost.weight_bytes == 7 + (4 + 5 * 512 + 4 * 5) + (4 + 10 * 5 + 4 * 10)
    assert cost.latency_s == pytest.approx(max(cost.macs / (32 * 2.84e9), cost.weight_bytes / 34.1e9))


def test_fewer_bits_never_cost_more(cost_model, tiny, example):
    for layer in LayerGraph.trace(tiny, example).compressible():
        costs = [cost_model.layer_cost(layer, Option(bits=b)) for b in (32, 8, 6, 4)]
        for more, fewer in zip(costs, costs[1:]):
            assert fewer.weight_bytes < more.weight_bytes
            assert fewer.energy_j <= more.energy_j and fewer.latency_s <= more.latency_s


def test_sparsity_saves_bytes_but_no_macs_without_zero_skipping(cost_model):
    dense, sparse = (cost_model.layer_cost(FC, Option(sparsity=s, bits=4)) for s in (0.0, 0.9))
    assert sparse.weight_bytes < dense.weight_bytes
    assert sparse.macs == dense.macs


def test_zero_skipping_target_skips_pruned_macs(tmp_path):
    path = tmp_path / "skipper.yaml"
    data = load_target("cortex-a76").model_dump(mode="json")
    data["zero_skipping"] = True
    path.write_text(yaml.safe_dump(data))
    model = make_cost_model("analytical", load_target(str(path)))
    assert model.layer_cost(FC, Option(sparsity=0.75)).macs == 5120 // 4


def test_costs_add_up(cost_model, tiny, example):
    layers = LayerGraph.trace(tiny, example).compressible()
    costs = [cost_model.layer_cost(l, layer_options(l)[0]) for l in layers]
    total = costs[0]
    for c in costs[1:]:
        total = total + c
    assert isinstance(total, Cost) and total.macs == sum(c.macs for c in costs)


def test_unknown_cost_model_kind():
    with pytest.raises(ValueError, match="analytical"):
        make_cost_model("magic", load_target("cortex-a76"))
