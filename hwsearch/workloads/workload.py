"""What a run compresses: a trained model, its (train, val, test) splits, a metric and a loss.

Every source of a run's model and data builds one `Workload` (`sources.open_workload`
picks the source): the built-in models trained on a built-in data set (`builtin`), or the
user's own model and data (`user`), named on the command line or passed as objects to
`hwsearch.search`. The stages after it see only this.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from hwsearch.workloads.data import Data


@dataclass
class Workload:
    model: nn.Module
    model_spec: dict          # how to rebuild the architecture: {"name": ..., "kwargs": {...}} or {"builder": "pkg:fn"}
    data: Data
    test_accuracy: float      # the data's metric on the test split (top-1 accuracy unless --eval says otherwise)
    trained_now: bool         # False when the weights came from the cache (or from the user)
    example: torch.Tensor     # one input, batch of 1: what the layer graph is traced with
    # a fresh copy of the architecture, weights not trained: what the exported file is loaded into
    architecture: Callable[[], nn.Module] | None = field(default=None, repr=False)
