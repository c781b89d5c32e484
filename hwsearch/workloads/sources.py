"""Which source a run's model and data come from, picked from its settings.

    --model resnet18_digits                    builtin: trained on digits on first use, cached
    --model pkg.nets:build --data pkg.data:load   user: the user's functions (--input, --eval, --loss)

The Python API passes objects instead (`user.user_workload`). A new source is a module
with a function returning a `Workload`, and one line here.
"""
from __future__ import annotations

from typing import Callable

from hwsearch.config import RunConfig, parse_input
from hwsearch.workloads.builtin import load_workload
from hwsearch.workloads.user import load_user_workload
from hwsearch.workloads.workload import Workload


def open_workload(config: RunConfig, progress=None, warn: Callable[[str], None] | None = None) -> Workload:
    """The built-in model trained on its data (cached), or the user's own model and data, checked."""
    if config.data is None:
        return load_workload(config.model, cache_dir=config.cache_dir, progress=progress, warn=warn)
    return load_user_workload(config.model, config.data, input_shape=parse_input(config.input) if config.input else None,
                              eval_spec=config.eval, loss_spec=config.loss)
