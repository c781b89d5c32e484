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

from hwsearch.compression import Plan, apply_
from hwsearch.workloads import Data, TrainConfig, train


@dataclass
class Retrained:
    model: nn.Module
    accuracy_before: float    # test metric right after compression, before fine-tuning
    val_before: float
    val_after: float          # validation metric after fine-tuning
    fine_tuned: bool          # True when the fine-tuned weights were kept
    val_accuracy: float       # of the kept model; used to choose among candidates
    test_accuracy: float      # of the kept model; reported ("accuracy": the data's metric, top-1 by default)


def retrain(model: nn.Module, plan: Plan, data: Data, config: TrainConfig, progress=None,
            description: str = "retraining", *, calibration=None) -> Retrained:
    """Compress a copy of `model` with `plan`, fine-tune it, and keep the better on validation.

    With `config.distill > 0` the uncompressed `model` is the teacher. `calibration`: the model
    inputs data-aware options were fitted on in the proxy table (the same fit is made again).
    Codebook layers train their centroids (each one's gradient the sum of its weights'), with
    every weight kept in its cluster, as Deep Compression retrains shared weights.
    """
    compressed = apply_(copy.deepcopy(model), plan, calibration=calibration).eval()
    test_before, val_before = data.evaluate(compressed, data.test), data.evaluate(compressed, data.val)
    tuned = copy.deepcopy(compressed)
    if config.epochs > 0:
        train(tuned, data, config, progress, description, teacher=model if config.distill else None)
    val_after = data.evaluate(tuned, data.val)
    fine_tuned = val_after >= val_before
    kept = tuned if fine_tuned else compressed
    return Retrained(kept, test_before, val_before, val_after, fine_tuned,
                     val_after if fine_tuned else val_before, data.evaluate(kept, data.test))
