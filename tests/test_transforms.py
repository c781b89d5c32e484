"""Whole-model transforms recorded in the file: a model reshaped in steps between retrainings reloads."""
import copy

import pytest
import torch

from hwsearch.export import artifact
from hwsearch.compression import Option, apply_, layer_nbytes, replace_classifier, with_transform
from hwsearch.compression.channels import prune_evenly_
from hwsearch.compression.transforms import pruning_arguments, rebuild_transforms, record, split_low_rank_
from hwsearch.errors import ModelError
from hwsearch.graph import LayerGraph
from hwsearch.workloads import build_model


def test_hsiaos_steps_reload_from_the_file_with_the_size_the_layers_count(tmp_path):
    torch.manual_seed(0)
    model = build_model("lenet5_caffe_digits").eval()
    x = torch.randn(16, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    spec = {"name": "lenet5_caffe_digits", "kwargs": {}}
    model = replace_classifier(model, x[:1], calibration=x)
    spec = with_transform(spec, x[:1])
    for _ in range(2):                                                   # compute falls where it is largest
        choice = prune_evenly_(model, LayerGraph.trace(model, x[:1]), 0.25)
        spec = record(spec, "prune_channels", **pruning_arguments(choice))
    assert model.conv2.out_channels < 50 or model.conv1.out_channels < 20
    model = split_low_rank_(model, "conv2", 4)
    spec = record(spec, "split_low_rank", layer="conv2", rank=4)
    names = [l.name for l in LayerGraph.trace(model, x[:1]).compressible()]
    assert "conv2.0" in names and "conv2.1" in names
    compressed = apply_(copy.deepcopy(model), {n: Option(bits=5, codebook=16) for n in names}).eval()
    written = artifact.save(compressed, tmp_path / "m.hws", model_spec=spec, layer_names=names)
    assert written == artifact.fixed_bytes(model, model_spec=spec, layer_names=names) + sum(
        layer_nbytes(compressed.get_submodule(n)) for n in names)
    loaded, meta = artifact.load(tmp_path / "m.hws")
    with torch.no_grad():
        assert torch.equal(loaded(x), compressed(x))
    assert [next(iter(t)) for t in meta["model"]["transforms"]] == ["gap_classifier", "prune_channels",
                                                                    "prune_channels", "split_low_rank"]


def test_an_unknown_transform_is_refused_with_the_known_ones():
    with pytest.raises(ModelError, match="gap_classifier, prune_channels, split_low_rank"):
        rebuild_transforms(build_model("lenet5_digits"), {"transforms": [{"fold": {}}]})
    with pytest.raises(ModelError, match="unknown model transform"):
        record({}, "fold")
