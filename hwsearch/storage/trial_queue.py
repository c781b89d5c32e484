"""Trials as a queue of tickets that any number of processes share.

The run that creates a study enqueues exactly `trials` waiting trials up front (the warm
starts, then empty tickets, each carrying its ticket number) and then marks them issued.
Every process working on the study (that run, and any `hwsearch worker`) claims a
waiting trial, evaluates it and records its values. A claim is the storage's move of one
trial from WAITING to RUNNING, which succeeds for one claimant only (a row lock in a
database, the order of the journal's entries in a journal file), so each ticket is
evaluated once however many processes share the study, and the study ends with exactly
`trials` trials without any process counting.

On a database storage a running trial carries a heartbeat. A trial whose process died
(killed, its machine gone) stops beating; after the grace period whichever process looks
first marks it FAIL and enqueues a retry of the same ticket (up to `MAX_RETRIES` times),
and the others go on. A process that finds nothing waiting keeps polling while trials of
other processes are still running, or a failed ticket's retry is still due, so that it can
take over a retry; a trial failed by an error of its own is marked (`ERROR`) and not retried.

A trial interrupted in this process (Ctrl-C, SIGTERM, SIGKILL) stays RUNNING: the run
that resumes it evaluates it again under the same number (`finish`), so that a resumed
run draws what an uninterrupted one draws.
"""
from __future__ import annotations

import os
import socket
import threading
import time
import warnings
from typing import Callable, Sequence

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.trial import TrialState

WORKER = f"{socket.gethostname()}:{os.getpid()}"   # who evaluates a trial on a shared storage: recorded with it
TICKET = "ticket"           # user attribute: the ticket number a trial (or its retry) evaluates
ISSUED = "tickets_issued"   # study user attribute: every ticket is in the queue
MAX_RETRIES = 3             # a ticket whose evaluation kills its process this often is given up
ERROR = "error"             # user attribute of a trial failed by an error of its own (not retried)

Objective = Callable[[optuna.Trial], float | Sequence[float]]


def issue(study: optuna.Study, starts: list[tuple[dict, dict]], trials: int, *, skip_duplicates: bool) -> None:
    """Enqueue `trials` tickets: the (params, user_attrs) of `starts` first, then empty ones.

    Called once, by the run that created the study, before any trial runs; a run killed
    before `ISSUED` is set recreates the study (nothing has been evaluated yet).
    """
    number = 0
    for params, attrs in starts[:trials]:
        before = len(study.get_trials(deepcopy=False))
        study.enqueue_trial(params, user_attrs={**attrs, TICKET: number}, skip_if_exists=skip_duplicates)
        number += len(study.get_trials(deepcopy=False)) > before
    for ticket in range(number, trials):
        study.enqueue_trial({}, user_attrs={TICKET: ticket})
    study.set_user_attr(ISSUED, True)


def issued(study: optuna.Study) -> bool:
    return bool(study.user_attrs.get(ISSUED))


def run(study: optuna.Study, storage: BaseStorage, objective: Objective, *,
        on_trial: Callable[[], None] | None = None, poll_s: float = 1.0) -> int:
    """Claim and evaluate waiting trials until none is waiting or running; returns how many this process evaluated.

    Trials still running in other processes are waited for only where a heartbeat can
    tell a dead process from a slow one (database storages); elsewhere nothing but this
    process runs trials.
    """
    interval = heartbeat_interval(storage)
    done, quiet_since = 0, None
    while True:
        if interval is not None:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExperimentalWarning)
                optuna.storages.fail_stale_trials(study)
        trial_id = _claim(study, storage, interval is not None)
        if trial_id is not None:
            done += evaluate(study, storage, trial_id, objective)
            if on_trial:
                on_trial()
            quiet_since = None
            continue
        if interval is None:
            return done
        if study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            quiet_since = None
        else:
            # nothing waiting or running: done, unless a stale trial was just failed by another process
            # and its retry is not enqueued yet (two writes, not one); that process is given a few beats
            quiet_since = quiet_since or time.monotonic()
            if not retry_due(study) or time.monotonic() - quiet_since > 3 * interval:
                return done
        time.sleep(poll_s)


def retry_due(study: optuna.Study) -> bool:
    """Whether some ticket has no completed trial and a failure that is to be retried: it died with its
    process (a stale heartbeat, not an error of its own) fewer than MAX_RETRIES + 1 times."""
    trials = study.get_trials(deepcopy=False)
    settled = {t.user_attrs.get(TICKET) for t in trials if t.state == TrialState.COMPLETE or ERROR in t.user_attrs}
    failures: dict[int, int] = {}
    for t in trials:
        if t.state == TrialState.FAIL:
            failures[t.user_attrs.get(TICKET)] = failures.get(t.user_attrs.get(TICKET), 0) + 1
    return any(ticket not in settled and count <= MAX_RETRIES for ticket, count in failures.items())


def stale_own(study: optuna.Study, workers: set[str], *, all_running: bool) -> list[int]:
    """Trial ids left RUNNING by earlier processes of this run (`workers`), or every running trial."""
    running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    return [t._trial_id for t in running if all_running or t.user_attrs.get("worker") in workers]


def evaluate(study: optuna.Study, storage: BaseStorage, trial_id: int, objective: Objective) -> bool:
    """Evaluate a RUNNING trial this process holds and record it; False if it was failed meanwhile.

    A trial this process took too long over (paused past the grace period) may have been
    marked FAIL and retried elsewhere: its result is then dropped, not recorded twice.
    An error in the objective marks the trial FAIL and propagates; an interruption leaves
    it RUNNING for a resumed run to finish.
    """
    trial = optuna.Trial(study, trial_id)
    try:
        with _Heartbeat(storage, trial_id) as heartbeat:
            if heartbeat.interval is not None:     # a shared storage: say who holds the trial (one more write)
                trial.set_user_attr("worker", WORKER)
            values = objective(trial)
    except UpdateFinishedTrialError:
        return False
    except Exception as exc:
        try:            # an error of the trial's own is not retried: say so, for `retry_due`
            trial.set_user_attr(ERROR, f"{type(exc).__name__}: {exc}"[:500])
        except Exception:       # the storage itself may be what failed
            pass
        # the trial, not its id: study.tell reads a bare number as the trial's number in the study
        study.tell(trial, state=TrialState.FAIL, skip_if_finished=True)
        raise
    study.tell(trial, values, skip_if_finished=True)
    return storage.get_trial(trial_id).state == TrialState.COMPLETE


def _claim(study: optuna.Study, storage: BaseStorage, beating: bool) -> int | None:
    for waiting in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        trial_id = waiting._trial_id        # Optuna's storages address trials by this id
        if beating:
            # beat before the claim: a claimant killed right after it leaves a heartbeat that goes stale
            storage.record_heartbeat(trial_id)
        try:
            if storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                return trial_id
        except UpdateFinishedTrialError:
            continue
    return None


def heartbeat_interval(storage: BaseStorage) -> int | None:
    get = getattr(storage, "get_heartbeat_interval", None)
    return get() if get else None


class _Heartbeat:
    """Record the trial's heartbeat every interval while it runs (database storages only)."""

    def __init__(self, storage: BaseStorage, trial_id: int):
        self.storage, self.trial_id = storage, trial_id
        self.interval = heartbeat_interval(storage)
        self.stop = threading.Event()
        self.thread = None

    def __enter__(self):
        if self.interval is not None:
            self.storage.record_heartbeat(self.trial_id)
            self.thread = threading.Thread(target=self._beat, daemon=True, name=f"heartbeat-{self.trial_id}")
            self.thread.start()
        return self

    def _beat(self):
        while not self.stop.wait(self.interval):
            try:
                self.storage.record_heartbeat(self.trial_id)
            except Exception:       # the database is gone: the trial's own writes will say so, once
                return

    def __exit__(self, *exc):
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
