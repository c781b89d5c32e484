"""`hwsearch worker`: one more process evaluating the trials of another run's study.

The run that created the study (`hwsearch --storage URL --run-id NAME ...`) recorded its
settings and its target's text in the study; a worker rebuilds the tables from them with
this machine's caches, checks that they hash to the run's, and claims waiting trials
until none is left (trial_queue). The run's proxy table comes with the record (the heavy
stage, minutes for an ImageNet-size model), so a worker reads it instead of recomputing it.
The run itself retrains and exports.
"""
from __future__ import annotations

import time
from dataclasses import replace

import optuna
from optuna.trial import TrialState

from cost_models.target import parse_target
from hwsearch import storage as storages
from hwsearch.storage import trial_queue
from hwsearch.errors import RunError
from hwsearch.runs.pipeline import config_from_record, study_exists
from hwsearch.runs.progress import say_to
from hwsearch.proxy import put_shared_entry
from hwsearch.runs.tables import build_tables, search_config
from hwsearch.study import Search
from hwsearch.workloads import usable_cache_dir


def work(*, storage_url: str, study_name: str, cache_dir: str | None = None, wait_s: float = 600,
         progress=None) -> dict:
    """Evaluate trials of another run's study until its queue is empty; returns what this process did.

    The study's record (config, target) rebuilds the tables here, from this machine's
    caches; they must hash to what the run recorded, or the trials would not be comparable.
    """
    if storages.kind(storage_url) == "journal":
        raise RunError("hwsearch worker needs a database storage (sqlite:///path.db or postgresql://...): a journal "
                       "file has no heartbeat to tell when a worker died mid-trial")
    storage = storages.open_storage(storage_url)
    deadline = time.monotonic() + wait_s
    while not (study_exists(storage, study_name) and trial_queue.issued(
            optuna.load_study(study_name=study_name, storage=storage))):
        if time.monotonic() >= deadline:
            raise RunError(f"no study named {study_name} with its trials issued in --storage "
                           f"{storages.masked(storage_url)} (waited {wait_s:g} s): start its run first "
                           f"(hwsearch --storage URL --run-id {study_name} ...) or check the name")
        time.sleep(min(2.0, max(0.0, deadline - time.monotonic())))
    record = optuna.load_study(study_name=study_name, storage=storage).user_attrs.get("hwsearch")
    if not record:
        raise RunError(f"study {study_name} in --storage {storages.masked(storage_url)} was not started by hwsearch")
    config = replace(config_from_record(record), cache_dir=cache_dir)
    cache = usable_cache_dir(config.cache_dir)
    if record.get("proxy_table"):       # the run's table, so that this machine does not recompute it
        put_shared_entry(record["proxy_table"], cache)
    storage = storages.open_storage(storage_url, heartbeat_s=config.heartbeat_s)
    target = parse_target(record["target_yaml"], source=f"(the target recorded with study {study_name})")
    tables = build_tables(config, target, progress, say_to(progress))
    fetched = record.get("proxy_table") is not None and tables.prepared.proxy_source == "from cache"
    search = Search(proxy=tables.proxy, costs=tables.costs, config=search_config(config))
    if search.digest() != record.get("tables_sha256"):
        raise RunError(f"this worker's tables differ from the ones study {study_name} was started with (another model "
                       "cache or library version): give it the run's --cache-dir contents, or the same versions")
    study = optuna.load_study(study_name=study_name, storage=storage, sampler=search.sampler())
    ran = trial_queue.run(study, storage, search.objective)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    return {"worker": trial_queue.WORKER, "ran": ran, "complete": states.count(TrialState.COMPLETE),
            "failed": states.count(TrialState.FAIL), "trials": config.trials,
            "proxy_table": "fetched from the run's study" if fetched else tables.prepared.proxy_source}
