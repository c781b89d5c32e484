"""Confirm candidates by retraining: fine-tune each compressed plan briefly, then measure.

Masks stay fixed and the forward pass already applies the exported quantization
(straight-through gradients), so what is fine-tuned is exactly what is exported.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

from torch import nn

from hwsearch.compress import apply_
from hwsearch.data import Digits
from hwsearch.options import Plan
from hwsearch.training import TrainConfig, accuracy, train


@dataclass
class Retrained:
    model: nn.Module
    accuracy_before: float    # test accuracy right after compression, before fine-tuning
    val_accuracy: float       # used to choose among candidates
    test_accuracy: float      # reported


def retrain(model: nn.Module, plan: Plan, data: Digits, config: TrainConfig, progress=None,
            description: str = "retraining") -> Retrained:
    """Compress a copy of `model` with `plan`, fine-tune it, and measure it."""
    compressed = apply_(copy.deepcopy(model), plan).eval()
    before = accuracy(compressed, data.test)
    if config.epochs > 0:
        train(compressed, data.train, config, progress, description)
    return Retrained(compressed, before, accuracy(compressed, data.val), accuracy(compressed, data.test))
