import copy

import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from hwsearch import artifact
from hwsearch.compress import apply_
from hwsearch.errors import ArtifactError
from hwsearch.layer_graph import LayerGraph
from hwsearch.models import build_model
from hwsearch.options import Option, layer_options

SPEC = {"name": "lenet5_digits", "kwargs": {}}


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = build_model("lenet5_digits").eval()
    graph = LayerGraph.trace(model, torch.zeros(1, 1, 8, 8))
    return model, graph.compressible()


def _export(model, layers, plan, path):
    compressed = apply_(copy.deepcopy(model), plan).eval()
    n = artifact.save(compressed, path, model_spec=SPEC, layer_names=[l.name for l in layers])
    return compressed, n


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_file_size_is_the_size_table_byte_for_byte_and_reloads_identically(lenet, tmp_path, data):
    model, layers = lenet
    plan = {l.name: data.draw(st.sampled_from(layer_options(l))) for l in layers}
    compressed, written = _export(model, layers, plan, tmp_path / "m.hws")
    predicted = artifact.fixed_bytes(model, model_spec=SPEC, layer_names=[l.name for l in layers]) + sum(
        artifact.layer_bytes(l.weight_shape, plan[l.name]) for l in layers)
    assert written == predicted == (tmp_path / "m.hws").stat().st_size
    loaded, meta = artifact.load(tmp_path / "m.hws")
    x = torch.randn(16, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), compressed(x))
    assert {n: loaded.get_submodule(n).option for n in plan} == plan
    assert meta["model"] == SPEC


def test_smaller_options_give_smaller_files(lenet, tmp_path):
    model, layers = lenet
    sizes = [_export(model, layers, {l.name: option for l in layers}, tmp_path / "m.hws")[1]
             for option in (Option(), Option(bits=8), Option(bits=4), Option(sparsity=0.9, bits=4))]
    assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == 4


@pytest.mark.parametrize("damage, message", [
    (lambda b: b"XXXX" + b[4:], "bad magic"),
    (lambda b: b[:-100], "checksum|truncated"),
    (lambda b: b[:200] + bytes([b[200] ^ 0xFF]) + b[201:], "corrupt"),
    (lambda b: b"", "bad magic"),
])
def test_damaged_files_are_refused_with_a_clear_error(lenet, tmp_path, damage, message):
    model, layers = lenet
    _export(model, layers, {l.name: Option(bits=4) for l in layers}, tmp_path / "m.hws")
    bad = tmp_path / "bad.hws"
    bad.write_bytes(damage((tmp_path / "m.hws").read_bytes()))
    with pytest.raises(ArtifactError, match=message):
        artifact.load(bad)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArtifactError, match="cannot read"):
        artifact.load(tmp_path / "absent.hws")
