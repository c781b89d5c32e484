"""Crashes lose nothing, and the same inputs give the same file.

One run is killed with SIGKILL four times, at four moments (while it builds its tables,
mid-study, while it retrains, while it exports), and resumed after each kill; it must end
with every trial it had finished, and with the very file an uninterrupted run exports.
Two runs started at the same moment on one cache and one results folder must both
succeed with that same file (and are the uninterrupted runs the killed one is compared with).
"""
import json
import os
import shutil
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from hwsearch.export import artifact
from hwsearch.errors import StorageError
from hwsearch.storage import open_storage
from hwsearch.workloads import load_workload

TRIALS = 80
ARGS = ["--model", "lenet5_digits", "--budget", "20KB", "--trials", str(TRIALS), "--top-k", "2",
        "--finetune-epochs", "1", "--seed", "7", "--quiet"]
SAME = ("model.hws", "plan.json", "candidates.csv", "pareto.csv", "layers.csv")


def hwsearch(*args, cwd, cache):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1", "HWSEARCH_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def kill_when(proc, condition, what, timeout=600):
    """SIGKILL `proc` as soon as `condition()` holds (polled every few milliseconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None:
            pytest.fail(f"the run ended before {what}: rc {proc.returncode}: {proc.stderr.read()}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.005)
    proc.kill()
    proc.wait(timeout=60)


def finished_trials(journal):
    """{number: (params, value)} of the complete trials in a run's journal."""
    if not journal.exists():
        return {}
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(journal)))
    if not storage.get_all_studies():
        return {}
    study_id = storage.get_all_studies()[0]._study_id
    return {t.number: (t.params, t.value) for t in storage.get_all_trials(study_id, states=(TrialState.COMPLETE,))}


@pytest.fixture(scope="module")
def cache(model_cache, tmp_path_factory):
    """A cache holding the trained LeNet-5 only: every run here builds its proxy table, the first one from scratch."""
    load_workload("lenet5_digits", cache_dir=model_cache)
    folder = tmp_path_factory.mktemp("cache")
    for path in model_cache.glob("lenet5_digits-*.pt"):
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="module")
def together(cache, tmp_path_factory):
    """Two uninterrupted runs started at the same moment on one cache (without a proxy table yet) and one
    results folder, with default run ids (most likely the same second): (their folders, their cache)."""
    cwd = tmp_path_factory.mktemp("together")
    fresh = cwd / "cache"
    shutil.copytree(cache, fresh)
    for path in fresh.glob("proxy-*.npz"):     # both runs build the proxy table and write its cache entry
        path.unlink()
    runs = [hwsearch(*ARGS, cwd=cwd, cache=fresh) for _ in range(2)]
    for run in runs:
        out, err = run.communicate(timeout=900)
        assert run.returncode == 0, err
    return sorted((cwd / "results").iterdir()), fresh


@pytest.fixture(scope="module")
def uninterrupted(together):
    return together[0][0]


def test_a_run_killed_at_four_moments_and_resumed_keeps_every_trial_and_ends_as_an_uninterrupted_run(
        cache, uninterrupted, tmp_path):
    partial = tmp_path / "results" / ".chain.partial"
    journal = partial / "study.journal"
    kept: dict[int, tuple] = {}

    def resume():
        return hwsearch("--resume", "chain", "--quiet", cwd=tmp_path, cache=cache)

    # 1. while the tables are built: the run has recorded itself, no trial exists yet
    run = hwsearch(*ARGS, "--run-id", "chain", cwd=tmp_path, cache=cache)
    kill_when(run, lambda: (partial / "run.json").exists(), "the run recorded itself")
    assert finished_trials(journal) == {}

    # 2. mid-study, with a quarter of the trials finished
    run = resume()
    kill_when(run, lambda: len(finished_trials(journal)) >= TRIALS // 4, "a quarter of the trials")
    kept.update(finished_trials(journal))
    assert TRIALS // 4 <= len(kept) < TRIALS

    # 3. while retraining: every trial is finished, nothing is exported yet
    run = resume()
    kill_when(run, lambda: len(finished_trials(journal)) == TRIALS, "the last trial")
    assert not (partial / "model.hws").exists()
    now = finished_trials(journal)
    assert {n: now[n] for n in kept} == kept                  # the trials finished before the kill, as they were
    kept = now

    # 4. while exporting: the file is written, the report and the plots are not all there yet
    run = resume()
    kill_when(run, lambda: (partial / "model.hws").exists(), "the exported file")
    assert partial.is_dir() and not (tmp_path / "results" / "chain").exists()

    run = resume()
    out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    folder = tmp_path / "results" / "chain"
    assert not partial.exists() and (folder / "summary.json").is_file()
    final = finished_trials(folder / "study.journal")
    assert len(final) == TRIALS and {n: final[n] for n in kept} == kept
    for name in SAME:
        assert (folder / name).read_bytes() == (uninterrupted / name).read_bytes(), name
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["search"]["trials"] == TRIALS and summary["search"]["failed"] == 0


def test_two_runs_started_together_on_one_cache_both_succeed_with_the_same_file(together):
    folders, cache = together
    assert len(folders) == 2 and not any(p.name.startswith(".") for p in folders)
    for name in SAME:
        assert (folders[0] / name).read_bytes() == (folders[1] / name).read_bytes(), name
    for folder in folders:
        artifact.load(folder / "model.hws")
        assert not list(folder.glob(".*.tmp"))
    assert len(list(cache.glob("proxy-*.npz"))) == 1 and not list(cache.glob(".*.tmp"))


def test_a_run_on_sqlite_killed_mid_study_is_resumed_from_another_folder(cache, tmp_path):
    start, elsewhere = tmp_path / "start", tmp_path / "elsewhere"
    start.mkdir()
    elsewhere.mkdir()
    args = ["--model", "lenet5_digits", "--budget", "20KB", "--trials", "40", "--top-k", "1", "--finetune-epochs", "0",
            "--storage", "sqlite:///studies.db", "--heartbeat", "1", "--run-id", "lite", "--quiet"]
    storage = f"sqlite:///{start / 'studies.db'}"

    def complete() -> int:
        try:
            study = optuna.load_study(study_name="lite", storage=open_storage(storage))
        except (KeyError, StorageError):      # no study yet, or the run is creating the database's tables
            return 0
        return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))

    run = hwsearch(*args, cwd=start, cache=cache)
    kill_when(run, lambda: (start / "studies.db").exists() and complete() >= 5, "five trials in the database")
    kept = complete()
    run = hwsearch("--resume", str(start / "results" / ".lite.partial"), "--quiet", cwd=elsewhere, cache=cache)
    out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    summary = json.loads((start / "results" / "lite" / "summary.json").read_text())
    assert summary["search"]["trials"] == 40 and kept >= 5
    assert summary["search"]["storage"] == storage                   # recorded as an absolute path
    assert len(summary["search"]["workers"]) in (1, 2)               # the killed process and the resumed one
    assert not (elsewhere / "results").exists() and not (elsewhere / "studies.db").exists()
