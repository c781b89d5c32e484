"""Confirm candidates by retraining: fine-tune each compressed plan briefly, then measure.

Masks stay fixed and the forward pass already applies the exported quantization
(straight-through gradients), so what is fine-tuned is exactly what is exported.
Fine-tuned weights are kept unless they score lower on the validation split than the
compressed weights did before fine-tuning (then those are kept): retraining never
makes a candidate worse on data the choice is allowed to see.
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
    val_before: float
    val_after: float          # validation accuracy after fine-tuning
    fine_tuned: bool          # True when the fine-tuned weights were kept
    val_accuracy: float       # of the kept model; used to choose among candidates
    test_accuracy: float      # of the kept model; reported


def retrain(model: nn.Module, plan: Plan, data: Digits, config: TrainConfig, progress=None,
            description: str = "retraining") -> Retrained:
    """Compress a copy of `model` with `plan`, fine-tune it, and keep the better on validation."""
    compressed = apply_(copy.deepcopy(model), plan).eval()
    test_before, val_before = accuracy(compressed, data.test), accuracy(compressed, data.val)
    tuned = copy.deepcopy(compressed)
    if config.epochs > 0:
        train(tuned, data.train, config, progress, description)
    val_after = accuracy(tuned, data.val)
    fine_tuned = val_after >= val_before
    kept = tuned if fine_tuned else compressed
    return Retrained(kept, test_before, val_before, val_after, fine_tuned,
                     val_after if fine_tuned else val_before, accuracy(kept, data.test))
