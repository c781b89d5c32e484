"""Several processes on one study in a real PostgreSQL server: `hwsearch --storage ...` and three `hwsearch worker`s.

The run that creates the study issues a fixed number of trials; the workers (started
first, as a cluster job would start them) join as soon as it exists. One worker is
killed with SIGKILL while it holds a running trial: its heartbeat stops, another process
marks the trial failed and retries its ticket, and the study still ends with every ticket
evaluated exactly once.
"""
import collections
import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time

import optuna
from optuna.trial import TrialState

from hwsearch.workloads import load_workload

TRIALS = 80


def start(*args, cwd, log):
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "hwsearch", *args], cwd=cwd, env=env, stdout=log,
                            stderr=subprocess.STDOUT, text=True)


def wait_for(condition, what, procs, timeout=600):
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [p for p in procs if p.poll() is not None]
        assert not dead, f"a process ended while waiting for {what}: rc {[p.returncode for p in dead]}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_three_workers_share_a_study_and_a_worker_killed_mid_trial_loses_nothing(postgres_url, model_cache, tmp_path):
    load_workload("lenet5_digits", cache_dir=model_cache)           # trained once, shared by every process
    storage = optuna.storages.RDBStorage(postgres_url)
    logs = {name: (tmp_path / f"{name}.log").open("w") for name in ("run", "w1", "w2", "w3")}
    common = ["--cache-dir", str(model_cache), "--quiet"]
    workers = [start("worker", "--storage", postgres_url, "--study", "shared", "--wait", "600", *common,
                     cwd=tmp_path, log=logs[f"w{i}"]) for i in (1, 2, 3)]
    run = start("--model", "lenet5_digits", "--budget", "20KB", "--trials", str(TRIALS), "--top-k", "1",
                "--finetune-epochs", "0", "--storage", postgres_url, "--heartbeat", "1", "--run-id", "shared",
                *common, cwd=tmp_path, log=logs["run"])
    procs = [run, *workers]
    try:
        def study():
            return optuna.load_study(study_name="shared", storage=storage)

        def issued():
            names = {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}
            return "shared" in names and study().user_attrs.get("tickets_issued")

        wait_for(issued, "the run to issue its trials", procs)
        pids = {f"{socket.gethostname()}:{w.pid}": w for w in workers}
        killed = None

        def catch_a_worker_mid_trial():
            """SIGSTOP a worker holding a running trial; SIGKILL it if it still holds it, else let it go on."""
            nonlocal killed
            for trial in study().get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
                worker = pids.get(trial.user_attrs.get("worker"))
                if worker is None:
                    continue
                worker.send_signal(signal.SIGSTOP)
                again = storage.get_trial(trial._trial_id)
                if again.state == TrialState.RUNNING and again.user_attrs.get("worker") == trial.user_attrs["worker"]:
                    worker.kill()
                    killed = (worker, trial.number, trial.user_attrs["ticket"])
                    return True
                worker.send_signal(signal.SIGCONT)
            return False

        wait_for(catch_a_worker_mid_trial, "a worker holding a running trial", procs)
        victim, victim_number, victim_ticket = killed
        survivors = [p for p in procs if p is not victim]
        for proc in survivors:
            proc.wait(timeout=600)
        victim.wait(timeout=60)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for log in logs.values():
            log.close()
    output = {name: (tmp_path / f"{name}.log").read_text() for name in logs}
    assert run.returncode == 0, output["run"]
    assert all(p.returncode == 0 for p in survivors if p is not run), output
    assert victim.returncode == -signal.SIGKILL

    trials = optuna.load_study(study_name="shared", storage=storage).get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    by_ticket = collections.Counter(t.user_attrs["ticket"] for t in complete)
    assert len(complete) == TRIALS and sorted(by_ticket) == list(range(TRIALS))      # none lost
    assert set(by_ticket.values()) == {1}                                              # none evaluated twice
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    failed = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name("shared"), victim_number))
    assert failed.state == TrialState.FAIL                                             # the killed worker's trial
    retry = next(t for t in complete if t.user_attrs["ticket"] == victim_ticket)
    assert victim_number in retry.system_attrs.get("retry_history", [])                # ... retried by another

    folder = tmp_path / "results" / "shared"
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["search"]["trials"] == TRIALS and summary["search"]["failed"] == len(trials) - TRIALS
    assert sum(summary["search"]["workers"].values()) == TRIALS
    stored_front, best = [], float("inf")     # the Pareto set, recomputed from the stored trials alone
    for t in sorted((t for t in complete if t.user_attrs["result"]["feasible"]),
                    key=lambda t: (t.user_attrs["result"]["totals"]["size_bytes"], t.value)):
        if t.value < best:
            stored_front.append(t.number)
            best = t.value
    with (folder / "pareto.csv").open() as f:
        assert [int(row["trial"]) for row in csv.DictReader(f)] == stored_front
    rows = (folder / "candidates.csv").read_text().splitlines()
    assert len(rows) == TRIALS + 1
    print(f"\n{TRIALS} trials: {len(complete)} complete, {len(trials) - TRIALS} failed (trial {victim_number} of "
          f"{victim.pid}, killed), per process {summary['search']['workers']}")


def test_processes_opening_a_new_postgresql_database_together_all_succeed(postgres_url):
    import psycopg

    from tests.test_storage import open_together

    with psycopg.connect(postgres_url, autocommit=True) as db:
        db.execute("CREATE DATABASE fresh")
    # without a retry, five of six lose the race to create Optuna's tables ("duplicate key value")
    assert open_together(postgres_url.rsplit("/", 1)[0] + "/fresh") == [(0, "")] * 6
