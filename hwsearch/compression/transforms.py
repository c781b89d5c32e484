"""Whole-model transforms: architecture changes made before the per-layer plan, recorded in the file.

A multi-step recipe (Hsiao's four steps, structured pruning in rounds) changes a model's
architecture between retrainings: the classifier replaced, channels removed, a layer split
into its low-rank factors. The file's header records each change in the model spec, so that
loading rebuilds the very architecture the weights belong to (they are loaded after):

    model, spec = transform_(model, spec, "split_low_rank", layer="fc1", rank=32)
    model, spec = transform_(model, spec, "prune_channels", choice=choice)   # already pruned: only recorded

The header stays independent of the per-layer plan, so the size table remains exact.
"""
from __future__ import annotations

import json

import torch
from torch import nn

from hwsearch.compression.channels import ChannelChoice, ChannelGroup, prune_channels_
from hwsearch.compression.classifier import replace_classifier
from hwsearch.compression.layer import compress, plain_layer
from hwsearch.errors import ModelError
from hwsearch.compression.options import Option


def record(spec: dict, name: str, **arguments) -> dict:
    """`spec` with one more transform, as JSON-able values."""
    if name not in REBUILDERS:
        raise ModelError(f"unknown model transform {name!r}: one of {', '.join(REBUILDERS)}")
    return {**spec, "transforms": [*spec.get("transforms", []), {name: arguments}]}


def split_low_rank_(model: nn.Module, layer: str, rank: int) -> nn.Module:
    """Replace `layer` by its two rank-`rank` SVD factors as plain modules (Xue et al. 2013), in place."""
    module = model.get_submodule(layer)
    parent, _, child = layer.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, plain_layer(compress(module, Option(rank=rank))))
    return model


def _rebuild_classifier(model: nn.Module, arguments: dict) -> nn.Module:
    return replace_classifier(model, torch.zeros(arguments["input"]))


def _rebuild_pruning(model: nn.Module, arguments: dict) -> nn.Module:
    group = ChannelGroup.from_json(json.dumps(arguments["group"]).encode())
    return prune_channels_(model, ChannelChoice(group, tuple(arguments["kept"])))


def _rebuild_split(model: nn.Module, arguments: dict) -> nn.Module:
    return split_low_rank_(model, arguments["layer"], arguments["rank"])


REBUILDERS = {"gap_classifier": _rebuild_classifier, "prune_channels": _rebuild_pruning,
              "split_low_rank": _rebuild_split}


def pruning_arguments(choice: ChannelChoice) -> dict:
    return {"group": json.loads(choice.group.to_json()), "kept": list(choice.kept)}


def rebuild_transforms(model: nn.Module, spec: dict) -> nn.Module:
    """Apply the transforms a spec records to a freshly built architecture, in order (weights follow)."""
    for transform in spec.get("transforms", []):
        (name, arguments), = transform.items()
        if name not in REBUILDERS:
            raise ModelError(f"unknown model transform {name!r}; this hwsearch knows {', '.join(REBUILDERS)}")
        model = REBUILDERS[name](model, arguments)
    return model
