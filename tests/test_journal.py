"""The study journal: Optuna's own format, synced once per trial state change rather than once per write."""
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend

from hwsearch.storage import journal


def objective(trial):
    return sum(trial.suggest_float(f"x{i}", -1, 1) ** 2 for i in range(10))


def test_every_trial_is_written_and_reads_back_with_optunas_own_backend(tmp_path):
    path = str(tmp_path / "study.journal")
    study = optuna.create_study(storage=JournalStorage(journal.TrialSyncedJournal(path)), study_name="s")
    study.optimize(objective, n_trials=12)
    again = optuna.load_study(study_name="s", storage=JournalStorage(JournalFileBackend(path)))
    assert [t.params for t in again.trials] == [t.params for t in study.trials]
    assert [t.value for t in again.trials] == [t.value for t in study.trials]


def test_fsync_waits_for_state_changes(tmp_path, monkeypatch):
    synced, written = [], []
    monkeypatch.setattr(journal.os, "fsync", lambda fd: synced.append(fd))
    original = journal.TrialSyncedJournal.append_logs

    def counting(self, logs):
        written.extend(logs)
        return original(self, logs)

    monkeypatch.setattr(journal.TrialSyncedJournal, "append_logs", counting)
    study = optuna.create_study(storage=JournalStorage(journal.TrialSyncedJournal(str(tmp_path / "j"))))
    study.optimize(objective, n_trials=5)
    assert len(written) >= 5 * 11                     # ten parameters and a state per trial, each its own entry
    assert 5 <= len(synced) <= 1 + 2 * 5              # the study, and each trial's state changes only
