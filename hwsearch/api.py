"""The Python API: hwsearch from a notebook or a script. The command line is a shell over it.

    import hwsearch

    result = hwsearch.search(model, (train, val, test), target="cortex-a76", budget="1MB")
    result.plan                      # {layer name: Option}, the exported plan
    result.model                     # the compressed model, read back from its file
    result.summary, result.front     # what summary.json and pareto.csv hold
    result.save("results/mine")      # the whole run folder

    model, meta = hwsearch.load("results/mine/model.hws", model=Net())
    costs = hwsearch.cost(Net(), (3, 32, 32), "cortex-a76")     # per layer and in total
    hwsearch.targets()                                          # the built-in targets

Every argument of `search` is a flag of `hwsearch` (`top_k` is `--top-k`, `input_shape`
is `--input`); a model and data may be objects (`nn.Module`; `(train, val, test)` as
tensor pairs or DataLoaders; `eval` and `loss` functions) or what the flags take (a
built-in model name, `package.module:function`). Bad input raises `HwsearchError` with the
same one-line message the command line prints.
"""
from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Sequence

from torch import nn

from cost_models import BACKENDS, Target, available_targets, load_target
from cost_models.report import cost_report
from hwsearch.compression import Option
from hwsearch.config import DATA_SETS, IN_MEMORY, RunConfig, check, data_kind, parse_input
from hwsearch.errors import HwsearchError
from hwsearch.export import artifact
from hwsearch.runs import pipeline
from hwsearch.workloads import Workload, open_data, user_workload

__all__ = ["SearchResult", "cost", "load", "resume", "run", "search", "targets"]


@dataclass
class SearchResult:
    """A finished run: its folder, and what is in it as Python objects."""
    folder: Path                      # the run folder (temporary unless `results=` was given: `save` keeps it)
    summary: dict                     # summary.json: baseline, final figures, search, retrained, config
    _architecture: Callable[[], nn.Module] | None = field(default=None, repr=False)
    _temporary: tempfile.TemporaryDirectory | None = field(default=None, repr=False)

    @property
    def plan(self) -> dict[str, Option]:
        """The exported plan: each compressible layer's option."""
        return {name: Option.from_dict(d) for name, d in json.loads((self.folder / "plan.json").read_text()).items()}

    @property
    def front(self) -> list[dict[str, Any]]:
        """The feasible Pareto front (pareto.csv): trial, source, proxy and whole-model costs per plan."""
        with open(self.folder / "pareto.csv", newline="") as f:
            return [{k: v if k == "source" else (int(v) if k in ("trial", "size_bytes", "macs", "dram_bytes")
                                                 else float(v)) for k, v in row.items()} for row in csv.DictReader(f)]

    @cached_property
    def model(self):
        """The compressed model, read back from model.hws (eval mode)."""
        architecture = self._architecture() if self._architecture else None
        # a builder here is the one the caller named to `search`, not one a file chose
        return artifact.load(self.folder / self.summary["artifact"], model=architecture, trust_code=True)[0]

    @property
    def accuracy_floor_met(self) -> bool:
        """Whether the exported model lost at most `max_accuracy_drop` points of the test metric."""
        return bool(self.summary["accuracy_floor"]["met"])

    def save(self, folder: str | Path) -> Path:
        """Copy the run folder (model.hws, model.onnx, summary.json, plots, report.md, study.journal) to `folder`,
        which must not exist yet; returns it."""
        folder = Path(folder)
        if folder.exists():
            raise HwsearchError(f"{folder} already exists; save to a new folder")
        shutil.copytree(self.folder, folder)
        return folder


def search(model: nn.Module | str = "resnet18_digits", data: Sequence | str | None = None, *,
           target: str | Path = "cortex-a76", budget: str | int | None = None, latency: str | None = None,
           energy: str | None = None, objectives: str = "proxy", sampler: str | None = None,
           proxy: str = "weighted", max_accuracy_drop: float = 2.0,
           input_shape: Sequence[int] | str | None = None, eval: Callable | str | None = None,
           loss: Callable | str | None = None, trials: int = 300, top_k: int = 3, finetune_epochs: int = 2,
           calibration: int = 256, grid: str = "default", structured: bool = False, classifier: str | None = None,
           seed: int = 0, results: str | Path | None = None, run_id: str | None = None,
           cache_dir: str | Path | None = None, storage: str | None = None, heartbeat: int = 10,
           data_dir: str | Path | None = None, device: str = "auto", finetune_steps: int | None = None,
           workers: int = 0, cluster: str | None = None, progress: bool | Any = True) -> SearchResult:
    """Find the per-layer compression that keeps the most accuracy within the budgets, confirm it by
    retraining, export it; returns the finished run.

    `model` and `data`: an `nn.Module` with `(train, val, test)` (each an `(inputs, labels)` pair
    of tensors or a DataLoader), or with a built-in data set by name ("fashion-mnist") or
    "imagefolder:PATH" (give `input_shape`); or a built-in model name (data: None or its data set),
    or `package.module:function` strings as the command line takes them. `data_dir`: where a
    built-in data set's files are. `budget` (file size: "10MB", "500KiB" or bytes),
    `latency` ("5ms") and `energy` ("2mJ") are hard constraints; give at least one. `results`:
    the folder for the run folder (default: a temporary one; `SearchResult.save` keeps it).
    `workers` / `cluster`: the proxy table's rows and the fine-tuning as tasks on a local Dask
    cluster of that many processes, or on the scheduler at `cluster` ("tcp://host:8786").
    `progress`: bars and log lines on stderr (True), none (False), or a rich `Progress`.
    """
    config, workload = _config(model, data, input_shape=input_shape, eval=eval, loss=loss, target=str(target),
                               budget=None if budget is None else str(budget), latency=latency, energy=energy,
                               objectives=objectives, sampler=sampler, proxy=proxy,
                               max_accuracy_drop=max_accuracy_drop, trials=trials, top_k=top_k,
                               finetune_epochs=finetune_epochs, calibration_size=calibration, grid=grid,
                               structured=structured, classifier=classifier, seed=seed, run_id=run_id,
                               cache_dir=None if cache_dir is None else str(cache_dir), storage=storage,
                               heartbeat_s=heartbeat, data_dir=None if data_dir is None else str(data_dir),
                               device=device, finetune_steps=finetune_steps, workers=workers,
                               cluster=cluster)
    temporary = tempfile.TemporaryDirectory(prefix="hwsearch-") if results is None else None
    result = run(replace(config, results_dir=temporary.name if temporary else str(results)), workload=workload,
                 progress=progress)
    result._temporary = temporary     # removed with the result, unless saved
    return result


def run(config: RunConfig, *, workload: Workload | None = None, progress: bool | Any = True) -> SearchResult:
    """A run from a checked `RunConfig` (what `hwsearch` flags and nightly entries hold), into
    `config.results_dir`; `workload` when the config names objects (`search` builds both)."""
    summary, folder = _with_progress(progress, lambda bars: pipeline.run(config, bars, workload=workload))
    return SearchResult(folder, summary, workload.architecture if workload else None)


def resume(run: str, *, model: nn.Module | None = None, data: Sequence | None = None,
           eval: Callable | None = None, loss: Callable | None = None, input_shape: Sequence[int] | None = None,
           results: str | Path = "results", cache_dir: str | Path | None = None,
           progress: bool | Any = True) -> SearchResult:
    """Continue an interrupted run (its id, or its results/.<id>.partial folder) with the settings it started
    with; a run started on objects needs them again (`model`, `data`, and `eval`, `loss` if it had them)."""
    workload = None
    if model is not None or data is not None:
        workload = user_workload(model, data, input_shape=_shape(input_shape), metric=eval, loss=loss)
    summary, folder = _with_progress(progress, lambda bars: pipeline.resume(
        run, results_dir=str(results), cache_dir=None if cache_dir is None else str(cache_dir), progress=bars,
        workload=workload))
    return SearchResult(folder, summary, workload.architecture if workload else None)


def load(path: str | Path, *, model: nn.Module | None = None, trust_code: bool = False) -> tuple[nn.Module, dict]:
    """Read a compressed file back: (the runnable model in eval mode, the file's header).

    Built-in architectures rebuild by name. A file of a user's architecture is loaded into
    `model` (a fresh instance of it), or, with `trust_code=True`, into what the builder the file
    names returns: loading never runs code a file chose.
    """
    return artifact.load(path, model=model, trust_code=trust_code)


def cost(model: nn.Module | str, input_shape: Sequence[int] | str, target: str | Path = "cortex-a76", *,
         batch: int = 1, backend: str = "analytical") -> dict:
    """What `model` costs on `target` before any compression, per op and in total (JSON-ready):
    `{"total": {"macs", "latency_s", "energy_j", "dram_bytes", ...}, "layers": [{"name", "kind", ...}, ...]}`."""
    if batch < 1:
        raise HwsearchError(f"batch must be at least 1, got {batch}")
    if backend not in BACKENDS:
        raise HwsearchError(f"backend {backend!r} is not a cost model: choose one of {', '.join(BACKENDS)}")
    return cost_report(model=model, input_shape=_shape(input_shape), target=load_target(target), batch=batch,
                       backend=backend)


def targets() -> dict[str, Target]:
    """The built-in targets by name, each validated (`targets/<name>.yaml`)."""
    return {name: load_target(name) for name in available_targets()}


def _config(model, data, *, input_shape, eval, loss, **settings) -> tuple[RunConfig, Workload | None]:
    """The run config of `search`'s arguments, checked; the workload when the model is an object."""
    if not isinstance(model, nn.Module):
        if not (data is None or isinstance(data, str)):
            raise HwsearchError("data as objects needs the model as an nn.Module: search(model, (train, val, test), "
                                "...)")
        for value, name in ((eval, "eval"), (loss, "loss")):
            if value is not None and not isinstance(value, str):
                raise HwsearchError(f"{name} as a function goes with a model passed as an object; with model "
                                    f"{model!r} give {name} as 'package.module:function'")
        shape = None if input_shape is None else "x".join(map(str, _shape(input_shape)))
        config = RunConfig(model=model, data=data, input=shape, eval=eval, loss=loss, **settings)
        check(config, api=True)
        return config, None
    if data is None or (isinstance(data, str) and data_kind(data) not in ("builtin", "imagefolder")):
        raise HwsearchError("a model passed as an object needs its data: (train, val, test) as objects, a built-in "
                            f"data set ({', '.join(DATA_SETS)}) or 'imagefolder:PATH'")
    named = {"model": f"{IN_MEMORY}{type(model).__module__}.{type(model).__qualname__}",
             "data": data if isinstance(data, str) else f"{IN_MEMORY}data",
             "input": None if input_shape is None else "x".join(map(str, _shape(input_shape))),
             "eval": f"{IN_MEMORY}{getattr(eval, '__name__', 'eval')}" if eval is not None else None,
             "loss": f"{IN_MEMORY}{getattr(loss, '__name__', 'loss')}" if loss is not None else None}
    config = RunConfig(**named, **settings)
    check(config, api=True)           # the settings, before the model and data are run
    if isinstance(data, str):         # a data set hwsearch loads, for the model given
        data = open_data(config)
    return config, user_workload(model, data, input_shape=_shape(input_shape), metric=eval, loss=loss)


def _shape(shape: Sequence[int] | str | None) -> tuple[int, ...] | None:
    if shape is None:
        return None
    if isinstance(shape, str):
        return parse_input(shape)
    if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in shape):
        raise HwsearchError(f"input_shape {tuple(shape)!r} is not a shape: give the sizes of one example, e.g. "
                            "(3, 32, 32)")
    return tuple(shape)


def _with_progress(progress, work):
    """work(bars): with rich progress bars on stderr (True), none (False), or the caller's own Progress.
    Optuna's per-trial log lines are silenced meanwhile (hwsearch reports failed trials itself)."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        if progress is False or progress is None:
            return work(None)
        if progress is not True:
            return work(progress)
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      console=console, transient=True,
                      disable=not (console.is_terminal or console.is_jupyter)) as bars:
            return work(bars)
    finally:
        optuna.logging.set_verbosity(verbosity)
