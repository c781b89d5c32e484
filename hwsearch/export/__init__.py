"""What a run hands over: the compressed file and its ONNX form.

    size = artifact.save(model, "model.hws", model_spec=spec, layer_names=names)   # bytes the search promised
    model, meta = artifact.load("model.hws")            # built-in architectures; see load's model= and trust_code=
    export_onnx(model, example, "model.onnx", integer_weights=True)

`artifact` is the file format (`.hws`: header, dense tensors, each compressed layer as
`hwsearch.compression.encoding` writes it, CRC-32); `onnx_export` writes the same model
for deployed runtimes (factorised layers as their smaller layers, integer weights with
DequantizeLinear, codebooks as gathers) and checks onnxruntime against torch.
"""
from hwsearch.export import artifact
from hwsearch.export.artifact import fixed_bytes, load, read_header, save
from hwsearch.export.onnx_export import export_onnx, plain_, predictions_agree

__all__ = ["artifact", "export_onnx", "fixed_bytes", "load", "plain_", "predictions_agree", "read_header", "save"]
