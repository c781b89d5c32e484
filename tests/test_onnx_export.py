import copy

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from cost_models.measure import session
from hwsearch.compression import CompressedLayer, Option, apply_
from hwsearch.export.onnx_export import export_onnx, plain_, quantized_nodes

LAYERS = ["stem", "blocks.0", "fc"]


class ConvLinear(nn.Module):
    """conv -> BN -> strided conv nested in a Sequential -> linear: the names a real model has."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.blocks = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):                                  # x: (N, 1, 8, 8)
        x = torch.relu(self.bn(self.stem(x)))
        return self.fc(torch.flatten(self.blocks(x), 1))


@pytest.fixture
def model():
    torch.manual_seed(0)
    model = ConvLinear()
    model.bn.running_mean.uniform_(-0.5, 0.5)              # a non-trivial BN to fold into the stem
    model.bn.running_var.uniform_(0.5, 2.0)
    return model.eval()


@pytest.fixture
def inputs():
    return torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(1))


OPTIONS = {
    "full rank": Option(),
    "low rank": Option(rank=4),
    "sparse": Option(sparsity=0.75),
    "4-bit": Option(bits=4),
    "all three": Option(rank=4, sparsity=0.5, bits=4),
}


@pytest.mark.parametrize("option", OPTIONS.values(), ids=OPTIONS.keys())
def test_plain_computes_what_the_compressed_model_computes(model, inputs, option):
    compressed = apply_(model, {name: option for name in LAYERS})
    expected = compressed(inputs)
    plain = plain_(copy.deepcopy(compressed))
    assert not any(isinstance(m, CompressedLayer) for m in plain.modules())
    torch.testing.assert_close(plain(inputs), expected, rtol=1e-5, atol=1e-6)
    kinds = [type(plain.get_submodule(name)) for name in LAYERS]
    assert kinds == ([nn.Sequential] * 3 if option.rank else [nn.Conv2d, nn.Conv2d, nn.Linear])


def test_low_rank_conv_is_the_channel_factorisation(model):
    layer = plain_(apply_(model, {"blocks.0": Option(rank=4)})).get_submodule("blocks.0")
    first, second = layer
    assert (first.in_channels, first.out_channels, first.kernel_size, first.stride, first.padding) == (8, 4, (3, 3), (2, 2), (1, 1))
    assert first.bias is None
    assert (second.in_channels, second.out_channels, second.kernel_size) == (4, 16, (1, 1))
    assert second.bias is not None


def test_plain_keeps_exported_values_and_sparsity(model):
    compressed = apply_(model, {"fc": Option(sparsity=0.9, bits=4)})
    expected = compressed.fc.effective_weight().detach()
    weight = plain_(compressed).fc.weight.detach()
    assert torch.equal(weight, expected)
    assert all(len(torch.unique(row[row != 0].abs())) <= 7 for row in weight)   # 4 bits: 7 magnitudes


def test_fp32_onnx_predicts_what_torch_predicts(model, inputs, tmp_path):
    compressed = apply_(model, {"stem": Option(bits=4), "blocks.0": Option(rank=4), "fc": Option(sparsity=0.5)})
    path = export_onnx(compressed, inputs, tmp_path / "model.onnx")
    assert isinstance(compressed.fc, CompressedLayer)                  # the caller's model is left as it was
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]  # no temporary left behind
    graph = onnx.load(path).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim] == [16, 1, 8, 8]
    (onnx_out,) = session(path).run(None, {"input": inputs.numpy()})
    torch_out = compressed(inputs).detach().numpy()
    np.testing.assert_allclose(onnx_out, torch_out, rtol=1e-4, atol=1e-5)
    assert (onnx_out.argmax(1) == torch_out.argmax(1)).all()


def test_int8_export_quantizes_exactly_the_named_layers(model, inputs, tmp_path):
    compressed = apply_(model, {"stem": Option(bits=8), "blocks.0": Option(rank=4, bits=4), "fc": Option(bits=4)})
    example = inputs[:1]
    path = export_onnx(compressed, example, tmp_path / "int8.onnx", int8_layers={"blocks.0", "fc"}, calibration=inputs)
    assert quantized_nodes(onnx.load(path)) == {
        "/blocks/blocks.0/blocks.0.0/Conv", "/blocks/blocks.0/blocks.0.1/Conv", "/fc/Gemm"}
    # onnxruntime runs them as fused int8 kernels, and the stem in float.
    session(path, optimized_model_filepath=tmp_path / "optimized.onnx")
    ops = [node.op_type for node in onnx.load(tmp_path / "optimized.onnx").graph.node]
    assert ops.count("QLinearConv") == 2 and ops.count("QGemm") == 1
    assert {"Conv", "FusedConv"} & set(ops)

    sess = session(path)
    for x in inputs[:4]:
        (int8_out,) = sess.run(None, {"input": x[None].numpy()})
        fp32_out = compressed(x[None]).detach().numpy()
        assert np.abs(int8_out - fp32_out).max() < 0.05 * np.abs(fp32_out).max()


def test_int8_export_needs_calibration_and_known_layers(model, inputs, tmp_path):
    with pytest.raises(ValueError, match="calibration"):
        export_onnx(model, inputs[:1], tmp_path / "a.onnx", int8_layers={"fc"})
    with pytest.raises(ValueError, match="multiple of the example's batch 16"):
        export_onnx(model, inputs, tmp_path / "a.onnx", int8_layers={"fc"}, calibration=inputs[:5])
    with pytest.raises(ValueError, match=r"\['bn', 'nope'\]"):
        export_onnx(model, inputs[:1], tmp_path / "a.onnx", int8_layers={"fc", "bn", "nope"}, calibration=inputs)
    assert list(tmp_path.iterdir()) == []


INTEGER_PLANS = {
    "uniform": {"stem": Option(bits=4), "blocks.0": Option(rank=4, bits=8), "fc": Option(sparsity=0.5, bits=6)},
    "codebook": {"stem": Option(bits=5, codebook=16), "blocks.0": Option(method="tucker2", rank=3, rank_out=6,
                                                                             bits=4, codebook=32),
                 "fc": Option(sparsity=0.9, bits=3, codebook=16)},
    "mixed": {"stem": Option(), "blocks.0": Option(method="lowrank_sparse", rank=2, density=0.1, bits=8),
              "fc": Option(method="svd", rank=4, bits=5, codebook=16)},
}


@pytest.mark.parametrize("plan", INTEGER_PLANS.values(), ids=INTEGER_PLANS.keys())
def test_integer_weights_export_gives_onnxruntime_the_same_predictions(model, plan, tmp_path):
    compressed = apply_(model, plan)
    images = torch.randn(64, 1, 8, 8, generator=torch.Generator().manual_seed(2))
    path = export_onnx(compressed, images[:1], tmp_path / "m.onnx", integer_weights=True)
    graph = onnx.load(path).graph
    ops = {node.op_type for node in graph.node}
    stored = {init.data_type for init in graph.initializer}
    quantized = [o for o in plan.values() if o.bits <= 8]
    if any(not o.codebook for o in quantized):
        assert "DequantizeLinear" in ops and onnx.TensorProto.INT8 in stored
    if any(o.codebook for o in quantized):
        assert "Gather" in ops and onnx.TensorProto.UINT8 in stored
    run = session(path)
    with torch.no_grad():
        expected = compressed(images)
    got = np.concatenate([run.run(None, {"input": x.numpy()})[0] for x in images.split(1)])
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == expected.numpy().argmax(1)).all()
