import copy
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from hwsearch.export import artifact
from hwsearch.compression import Option, apply_, layer_nbytes, layer_options
from hwsearch.errors import ArtifactError
from hwsearch.graph import LayerGraph
from hwsearch.workloads import build_model

SPEC = {"name": "lenet5_digits", "kwargs": {}}
DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="module")
def lenet():
    torch.manual_seed(0)
    model = build_model("lenet5_digits").eval()
    graph = LayerGraph.trace(model, torch.zeros(1, 1, 8, 8))
    return model, graph.compressible()


CALIBRATION = torch.randn(32, 1, 8, 8, generator=torch.Generator().manual_seed(2))


def _export(model, layers, plan, path):
    compressed = apply_(copy.deepcopy(model), plan, calibration=CALIBRATION).eval()
    n = artifact.save(compressed, path, model_spec=SPEC, layer_names=[l.name for l in layers])
    return compressed, n


def _new_options(layer):
    """Options of the version-2 operators for a LeNet-5 layer."""
    rows, cols = layer.matrix_shape
    out = [Option(bits=5, codebook=16), Option(sparsity=0.9, bits=4, codebook=32),
           Option(method="lowrank_sparse", rank=1, density=0.05, bits=8),
           Option(rank=2, sparsity=0.5, data_aware=True), Option(sparsity=0.95, bits=6)]
    if layer.kind == "conv":
        out += [Option(method="tucker2", rank=1, rank_out=2, bits=6, data_aware=True),
                Option(method="spatial", rank=2, bits=4, codebook=16)]
    return out


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_file_size_is_the_size_table_byte_for_byte_and_reloads_identically(lenet, tmp_path, data):
    model, layers = lenet
    plan = {l.name: data.draw(st.sampled_from(layer_options(l) + _new_options(l))) for l in layers}
    compressed, written = _export(model, layers, plan, tmp_path / "m.hws")
    predicted = artifact.fixed_bytes(model, model_spec=SPEC, layer_names=[l.name for l in layers]) + sum(
        layer_nbytes(compressed.get_submodule(l.name)) for l in layers)
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


def test_version_1_files_still_load(tmp_path):
    """tests/data/lenet5_v1.hws was written by hwsearch's version-1 writer (conv1 fp32, conv2 6-bit,
    fc1 rank 8 at 50% sparsity and 4 bits, fc2 75% sparse 8-bit, fc3 4-bit) with its outputs beside it."""
    model, meta = artifact.load(DATA / "lenet5_v1.hws")
    x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        # the outputs were saved on another CPU: its float kernels may round the last bit differently
        torch.testing.assert_close(model(x), torch.from_numpy(np.load(DATA / "lenet5_v1_outputs.npy")),
                                   rtol=1e-5, atol=1e-6)
    assert model.fc1.option == Option(rank=8, sparsity=0.5, bits=4) and meta["model"]["name"] == "lenet5_digits"
    again = tmp_path / "v2.hws"                       # and write back as version 2, same outputs
    artifact.save(model, again, model_spec=meta["model"], layer_names=meta["layers"])
    reloaded, _ = artifact.load(again)
    with torch.no_grad():
        assert torch.equal(reloaded(x), model(x))


def test_a_file_of_an_unknown_version_is_refused_with_the_fix(tmp_path):
    data = bytearray((DATA / "lenet5_v1.hws").read_bytes())
    data[4:6] = (7).to_bytes(2, "little")
    body = bytes(data[:-4])
    (tmp_path / "v7.hws").write_bytes(body + zlib.crc32(body).to_bytes(4, "little"))
    with pytest.raises(ArtifactError, match="version 7.*reads versions 1 and 2"):
        artifact.load(tmp_path / "v7.hws")
