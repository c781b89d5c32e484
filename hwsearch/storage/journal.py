"""The study's journal file, synced to disk once per finished trial instead of once per write.

Optuna's `JournalFileBackend` calls fsync after every log entry: a trial of the default
study writes about 25 (one per suggested parameter, its user attributes, its state), and
on this machine fsync, not sampling, was most of a trial's wall time
(benchmarks/search_strategies.py profiles it). Every entry is still written and flushed
to the operating system at once, so a killed process (even SIGKILL) loses nothing it
wrote; only the fsync, which guards against the machine itself losing power, waits for
the entries that change a study's or a trial's state. A trial cut off by a power loss
before its final state was synced is one Optuna would mark failed anyway.
"""
from __future__ import annotations

import json
import os
from typing import Any

from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.storages.journal._file import get_lock_file
from optuna.storages.journal._storage import JournalOperation
from optuna.trial import TrialState

_SYNCED = {JournalOperation.CREATE_STUDY, JournalOperation.DELETE_STUDY, JournalOperation.SET_TRIAL_STATE_VALUES,
           JournalOperation.DISCARD_TRIALS}


class TrialSyncedJournal(JournalFileBackend):
    """A journal file (Optuna's format, readable by optuna-dashboard) that fsyncs at state changes only."""

    def __init__(self, file_path: str):
        super().__init__(file_path, lock_obj=JournalFileOpenLock(file_path))   # an flock, not a symlink per write

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        with get_lock_file(self._lock):
            with open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                if any(_changes_state(log) for log in logs):
                    os.fsync(f.fileno())


def _changes_state(log: dict[str, Any]) -> bool:
    """An entry worth an fsync: a study created or deleted, a trial finished. A trial claimed (set
    RUNNING) is not: lost with the machine, it is waiting again, and is claimed again."""
    if log.get("op_code") not in _SYNCED:
        return False
    return log["op_code"] != JournalOperation.SET_TRIAL_STATE_VALUES or TrialState(log["state"]).is_finished()
