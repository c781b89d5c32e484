"""Classifier replacement (Hsiao 2017): the fully connected stack after the last conv becomes GAP + one linear."""
import copy

import pytest
import torch
from torch import nn

from hwsearch.export import artifact
from hwsearch.compression import Option, apply_, layer_nbytes, replace_classifier, with_transform
from hwsearch.errors import ModelError
from hwsearch.graph import LayerGraph
from hwsearch.workloads import build_model

SPEC = {"name": "vgg_small_digits", "kwargs": {}}


@pytest.fixture(scope="module")
def vgg():
    torch.manual_seed(0)
    return build_model("vgg_small_digits").eval(), torch.randn(64, 1, 16, 16, generator=torch.Generator().manual_seed(1))


def test_the_fully_connected_stack_becomes_one_linear_layer_on_pooled_channels(vgg):
    model, x = vgg
    replaced = replace_classifier(model, x[:1])
    linears = [m for m in replaced.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 1 and linears[0].in_features == 128 and linears[0].out_features == 10
    assert sum(p.numel() for p in replaced.parameters()) < sum(p.numel() for p in model.parameters()) - 130_000
    assert replaced(x).shape == model(x).shape
    assert [l.name for l in LayerGraph.trace(replaced, x[:1]).compressible()][-1] == "classifier"


def test_the_new_layer_starts_from_the_least_squares_fit_of_the_old_logits(vgg):
    model, x = vgg
    with torch.no_grad():
        y = model(x)
        fitted = replace_classifier(model, x[:1], calibration=x)(x)
        random = replace_classifier(model, x[:1])(x)
    assert (fitted - y).norm() < 0.5 * (random - y).norm()


def test_a_replaced_model_is_rebuilt_from_its_file(vgg, tmp_path):
    model, x = vgg
    replaced = replace_classifier(model, x[:1], calibration=x).eval()
    names = [l.name for l in LayerGraph.trace(replaced, x[:1]).compressible()]
    compressed = apply_(copy.deepcopy(replaced), {n: Option(bits=8) for n in names})
    spec = with_transform(SPEC, x[:1])
    written = artifact.save(compressed, tmp_path / "m.hws", model_spec=spec, layer_names=names)
    assert written == artifact.fixed_bytes(replaced, model_spec=spec, layer_names=names) + sum(
        layer_nbytes(compressed.get_submodule(n)) for n in names)
    loaded, meta = artifact.load(tmp_path / "m.hws")
    with torch.no_grad():
        assert torch.equal(loaded(x), compressed(x))
    assert meta["model"]["transforms"] == [{"gap_classifier": {"input": [1, 1, 16, 16]}}]


def test_models_without_a_plain_classifier_are_refused(vgg):
    with pytest.raises(ModelError, match="no Conv2d"):
        replace_classifier(build_model("lenet300_100_digits"), torch.zeros(1, 1, 28, 28))

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.a, self.b = nn.Conv2d(1, 4, 3), nn.Linear(4 * 6 * 6, 10), nn.Linear(4 * 6 * 6, 10)

        def forward(self, x):
            f = torch.flatten(self.conv(x), 1)
            return self.a(f) + self.b(f)

    with pytest.raises(ModelError, match="feeds 2 ops"):
        replace_classifier(TwoHeads(), torch.zeros(1, 1, 8, 8))
