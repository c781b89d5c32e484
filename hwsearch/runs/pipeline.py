"""One run's life: a new run folder, or an interrupted one resumed, around the stages.

    summary, folder = run(RunConfig(target="cortex-a76", budget="10MB"))
    summary, folder = resume("cortex-a76-10MB-resnet18_digits-20261207-120000")

Results are written to `results/.<run-id>.partial` (see `folder`) and renamed to
`results/<run-id>` only when everything succeeded. A run that fails before any trial
finished leaves no folder; one that stops later (Ctrl-C, SIGKILL, an error) keeps its
folder and its finished trials, and `resume` continues it: the tables come back from the
caches, the trials it left running are evaluated again under their own numbers, the rest
of the queue runs, then retraining and export, so it ends where an uninterrupted run ends.
The stages themselves are `stages.run_stages`.
"""
from __future__ import annotations

import re
from dataclasses import asdict, fields, replace
from datetime import datetime, timezone
from pathlib import Path

import optuna
from optuna.trial import TrialState

from cost_models import Target
from cost_models.target import parse_target, read_target
from hwsearch import storage as storages
from hwsearch.budget import Budgets
from hwsearch.config import IMAGE_FOLDER, IN_MEMORY, MAX_ID, RunConfig, check_run_id, resolve_device
from hwsearch.errors import RunError, RunKept
from hwsearch.runs.folder import RECORD, RunFolder, interrupted_runs
from hwsearch.runs.prepared import Prepared
from hwsearch.runs.progress import say_to
from hwsearch.runs.stages import run_stages
from hwsearch.runs.tables import search_config
from hwsearch.study import SearchConfig
from hwsearch.workloads import Workload, usable_cache_dir

RECORD_VERSION = 1


def run(config: RunConfig, progress=None, *, prepared: Prepared | None = None,
        target: Target | None = None, target_text: str | None = None,
        workload: Workload | None = None) -> tuple[dict, Path]:
    """Run the whole pipeline in a new run folder; returns the summary and the results folder.

    `prepared` (from `prepare`, same model, data and calibration) skips the stages that do not
    depend on the hardware; `target` (with its YAML text) replaces reading `config.target`: a
    variant built in memory by a co-design sweep; `workload` is a model and data passed as
    objects (`hwsearch.search`), which `config.model` and `config.data` only name.
    """
    search = search_config(config)                 # bad input fails here, before any work
    resolve_device(config.device)
    if target is None:
        target, target_text = read_target(config.target)
    elif target_text is None:
        raise ValueError("a target given in memory needs its YAML text (the run records it for --resume)")
    usable_cache_dir(config.cache_dir)
    storages.kind(config.storage)
    if config.run_id is not None:
        check_run_id(config.run_id)
    run_id = config.run_id or default_run_id(target.name, search.budgets, config.model)
    folder = RunFolder.create(Path(config.results_dir), run_id, exact=config.run_id is not None)
    try:
        storage = storages.open_storage(config.storage, run_folder=folder.path, heartbeat_s=config.heartbeat_s)
        if config.storage is not None and study_exists(storage, folder.run_id):
            raise RunError(f"a study named {folder.run_id} is already in --storage {storages.masked(config.storage)}: "
                           "pass another --run-id (or continue that run with hwsearch --resume)")
        folder.write_record({"version": RECORD_VERSION, "run_id": folder.run_id,
                             "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                             # absolute paths: --resume and workers may start in another folder
                             "config": asdict(with_absolute_paths(config)), "target_yaml": target_text,
                             "workers": []})
        folder.add_worker()
    except BaseException:
        folder.discard()
        raise
    stopped = [p.name for p in interrupted_runs(Path(config.results_dir))]
    if stopped:
        say_to(progress)(f"note: {len(stopped)} interrupted run(s) in {config.results_dir}/ ({', '.join(stopped[:3])}"
                       f"{', ...' if len(stopped) > 3 else ''}): hwsearch --resume <run-id> continues one")
    return _in_folder(folder, config, target, search, storage, None, progress, prepared, workload)


def resume(run_or_folder: str, *, results_dir: str = "results", cache_dir: str | None = None,
           progress=None, workload: Workload | None = None) -> tuple[dict, Path]:
    """Continue an interrupted run (its id, or its `.<id>.partial` folder) with the settings it started with.

    A run started on objects (`hwsearch.search(model, data)`) needs them again: `workload`.
    """
    folder = RunFolder.resume(Path(results_dir), run_or_folder)
    try:
        record = folder.record
        config = config_from_record(record)
        if config.model.startswith(IN_MEMORY) and workload is None:
            raise RunError(f"run {folder.run_id} was started from Python on a model passed as an object "
                           f"({config.model.removeprefix(IN_MEMORY)}): resume it from Python, "
                           "hwsearch.resume(run, model=..., data=...)")
        if cache_dir is not None:
            config = replace(config, cache_dir=cache_dir)
        target = parse_target(record["target_yaml"], source=f"(the target recorded in {folder.path / RECORD})")
        search = search_config(config)
        usable_cache_dir(config.cache_dir)
        previous = set(record.get("workers", []))
        folder.add_worker()
        if config.storage is None:
            storages.repair_journal(folder.path / storages.JOURNAL)
        storage = storages.open_storage(config.storage, run_folder=folder.path, heartbeat_s=config.heartbeat_s)
    except BaseException:
        folder.release()
        raise
    return _in_folder(folder, config, target, search, storage, previous, progress, None, workload)


def with_absolute_paths(config: RunConfig) -> RunConfig:
    """The config with the user's .py files, the cache folder and a file storage as absolute paths."""
    def absolute(spec: str | None) -> str | None:
        where, sep, function = (spec or "").rpartition(":")
        return f"{Path(where).resolve()}:{function}" if sep and where.endswith(".py") else spec

    storage = config.storage
    if storage is not None and storages.kind(storage) == "journal":
        storage = str(Path(storage).resolve())
    elif storage is not None and storage.startswith("sqlite:///") and not storage.startswith("sqlite:////"):
        storage = f"sqlite:///{Path(storage.removeprefix('sqlite:///')).resolve()}"
    data = absolute(config.data)
    if data is not None and data.startswith(IMAGE_FOLDER):
        data = IMAGE_FOLDER + str(Path(data.removeprefix(IMAGE_FOLDER)).resolve())
    return replace(config, model=absolute(config.model), data=data, eval=absolute(config.eval),
                   loss=absolute(config.loss), storage=storage,
                   cache_dir=str(Path(config.cache_dir).resolve()) if config.cache_dir else None,
                   data_dir=str(Path(config.data_dir).resolve()) if config.data_dir else None)


def config_from_record(record: dict) -> RunConfig:
    """The RunConfig a run recorded (settings added to RunConfig since then keep their defaults)."""
    known = {f.name for f in fields(RunConfig)}
    return RunConfig(**{k: v for k, v in record["config"].items() if k in known})


def default_run_id(target: str, budgets: Budgets, model: str) -> str:
    """<target>-<budgets>-<model>-<UTC time>, cut to a folder name of at most MAX_ID characters."""
    stamp = f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}"
    head = re.sub(r"[^A-Za-z0-9._-]", "", f"{target}-{budgets.label()}-{model_label(model)}").lstrip(".")
    return f"{head[:MAX_ID - len(stamp) - 6]}-{stamp}"      # room for a -2, -3 suffix


def _in_folder(folder: RunFolder, config: RunConfig, target, search: SearchConfig, storage,
               previous: set[str] | None, progress, prepared: Prepared | None = None,
               workload: Workload | None = None) -> tuple[dict, Path]:
    try:
        summary = run_stages(config, target, search, folder, storage, previous, progress, prepared, workload)
        final = folder.finish()
    except BaseException as exc:
        finished = _finished_trials(storage, folder.run_id)
        if finished or previous is not None:          # trials worth keeping, or a folder that was there before
            folder.release()
            raise RunKept(folder.path, finished) from exc
        if config.storage is not None:
            _forget_study(storage, folder.run_id)
        folder.discard()
        raise
    return summary, final


def study_exists(storage, name: str) -> bool:
    return any(s.study_name == name for s in optuna.get_all_study_summaries(storage, include_best_trial=False))


def _finished_trials(storage, name: str) -> int:
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    except Exception:            # no study yet, or the storage is what failed
        return 0


def _forget_study(storage, name: str) -> None:
    try:
        optuna.delete_study(study_name=name, storage=storage)
    except Exception:            # never created, or the database is gone: nothing to clean
        pass


def model_label(model: str) -> str:
    """A run-folder-friendly name: `resnet18_digits`, `nets.build` for `path/to/nets.py:build`, or a class name."""
    if model.startswith(IN_MEMORY):
        return model.removeprefix(IN_MEMORY).rpartition(".")[2]
    where, _, function = model.rpartition(":")
    return f"{Path(where).stem if where.endswith('.py') else where.rpartition('.')[2]}.{function}" if where else model
