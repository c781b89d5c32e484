"""One harness for the accuracy benchmarks: a plan fine-tuned with each seed, its result on every test
image, intervals over test images and paired tests between methods.

    outcome = confirm(t, choice)                 # the default fine-tuning, seeds 0 and 1
    mean, low, high = interval(outcome.correct)  # accuracy and its 95% bootstrap interval
    p = mcnemar(a.correct, b.correct)            # exact McNemar test, paired per test image and seed

Fine-tuning is hwsearch's own (`hwsearch.runs.retrain`: structure fixed, the exported quantization
in the forward pass, fine-tuned weights kept unless validation drops) with the default recipe, so
that every method is confirmed as a run confirms its candidates.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import binomtest

from hwsearch.config import RunConfig
from hwsearch.runs import retrain
from hwsearch.workloads import TrainConfig, train

SEEDS = (0, 1)
BOOTSTRAP = 2000        # resamples of the test images for each interval


@dataclass
class Outcome:
    """A plan after fine-tuning, once per seed."""
    correct: np.ndarray         # (seeds, test images): whether each image is classified right
    val: list[float]            # validation accuracy of the kept weights, per seed
    before: float               # test accuracy right after compression, before fine-tuning (mean over seeds)

    @property
    def test(self) -> float:
        return float(self.correct.mean())


def recipe(work, seed: int, **changes) -> TrainConfig:
    """The fine-tuning a run gives its candidates (`RunConfig`'s defaults), with `seed`."""
    c = RunConfig()
    fields = dict(epochs=c.finetune_epochs, max_lr=c.finetune_lr, seed=seed, max_shift=work.data.max_shift,
                  schedule=c.finetune_schedule, distill=c.finetune_distill)
    return TrainConfig(**{**fields, **changes})


@torch.no_grad()
def correct_on(model: torch.nn.Module, split) -> np.ndarray:
    """Per example of `split`, in order: whether `model`'s top-1 class is the label."""
    model.eval()
    return torch.cat([model(x).argmax(1) == y for x, y in split.batches(512)]).numpy()


def confirm(t, choice: dict, seeds=SEEDS, **changes) -> Outcome:
    """The plan `choice` (indices into t.options, or options) compressed, fine-tuned per seed, and tested image by
    image."""
    work, runs = t.work, []
    plan = {n: c if not isinstance(c, int) else t.options[n][c] for n, c in choice.items()}
    for seed in seeds:
        result = retrain(work.model, plan, work.data, recipe(work, seed, **changes), calibration=t.calibration)
        runs.append((result, correct_on(result.model, work.data.test)))
    return Outcome(np.stack([c for _, c in runs]), [r.val_accuracy for r, _ in runs],
                   float(np.mean([r.accuracy_before for r, _ in runs])))


def confirm_module(work, model: torch.nn.Module, seeds=SEEDS) -> Outcome:
    """A model changed outside hwsearch (a pruned copy), fine-tuned as `retrain` fine-tunes: the fine-tuned weights
    kept unless validation drops."""
    runs = []
    before = work.data.evaluate(model, work.data.test)
    for seed in seeds:
        val_before = work.data.evaluate(model, work.data.val)
        tuned = copy.deepcopy(model)
        train(tuned, work.data, recipe(work, seed))
        val_after = work.data.evaluate(tuned, work.data.val)
        kept = tuned if val_after >= val_before else model
        runs.append((max(val_after, val_before), correct_on(kept, work.data.test)))
    return Outcome(np.stack([c for _, c in runs]), [v for v, _ in runs], before)


def interval(correct: np.ndarray, level: float = 0.95, seed: int = 0) -> tuple[float, float, float]:
    """Mean accuracy over seeds and test images, and its bootstrap interval over test images."""
    correct = np.atleast_2d(correct).astype(np.float64)
    per_image = correct.mean(axis=0)                   # (images,): the seeds' mean for each image
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(per_image), (BOOTSTRAP, len(per_image)))
    means = per_image[draws].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(per_image.mean()), float(low), float(high)


def mcnemar(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p-value that `a` and `b` are equally accurate, from the images one gets right and
    the other wrong (each seed's pair counted; the same image under two seeds is counted twice)."""
    a, b = np.asarray(a, bool).ravel(), np.asarray(b, bool).ravel()
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(binomtest(only_a, only_a + only_b, 0.5).pvalue)


def percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def with_interval(correct: np.ndarray) -> str:
    mean, low, high = interval(correct)
    return f"{mean * 100:.2f}% [{low * 100:.2f}, {high * 100:.2f}]"
