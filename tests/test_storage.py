"""Storage URLs, their errors, and a journal cut short."""
import optuna
import pytest

from hwsearch.errors import StorageError
from hwsearch.storage import kind, masked, open_storage, repair_journal


@pytest.mark.parametrize("url, expected", [
    (None, "journal"), ("runs/a.journal", "journal"), ("a.log", "journal"), ("sqlite:///x.db", "sqlite"),
    ("postgresql://u@h/db", "postgresql"), ("postgresql+psycopg://u@h:5432/db", "postgresql"),
])
def test_storage_kinds(url, expected):
    assert kind(url) == expected


@pytest.mark.parametrize("url", ["redis://h", "studies.db", "http://h/x", "runs/"])
def test_anything_else_is_refused_with_examples(url):
    with pytest.raises(StorageError, match="is not a storage hwsearch opens: give a journal file"):
        kind(url)


def test_passwords_are_masked():
    assert masked("postgresql://me:secret@db.lab:5432/runs") == "postgresql://me:***@db.lab:5432/runs"
    assert masked("postgresql://me@db.lab/runs") == "postgresql://me@db.lab/runs"


def test_a_journal_cut_mid_entry_is_cut_back_to_its_last_whole_entry(tmp_path):
    path = tmp_path / "study.journal"
    storage = open_storage(str(path))
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3)
    whole = path.read_bytes()
    path.write_bytes(whole + b'{"op_code": 5, "worker_id": "x", "tri')     # a write the machine lost half of
    (tmp_path / "study.journal.lock").symlink_to(path)                       # and the lock its writer held
    assert repair_journal(path) > 0 and path.read_bytes() == whole
    assert not (tmp_path / "study.journal.lock").exists()
    study = optuna.load_study(study_name="s", storage=open_storage(str(path)))
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 5 and repair_journal(path) == 0


def test_an_sqlite_storage_opens_with_a_heartbeat(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path}/s.db", heartbeat_s=2)
    assert storage.get_heartbeat_interval() == 2


OPEN = "import sys; from hwsearch.storage.backends import open_storage; open_storage(sys.argv[1], heartbeat_s=1)"


def open_together(url: str, processes: int = 6) -> list[tuple[int, str]]:
    """Open one new database from several processes at once, as a run and its workers started together do."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    procs = [subprocess.Popen([sys.executable, "-c", OPEN, url], env=env, stderr=subprocess.PIPE, text=True)
             for _ in range(processes)]
    return [(p.wait(timeout=300), p.stderr.read()) for p in procs]


def test_processes_opening_a_new_sqlite_database_together_all_succeed(tmp_path):
    # without a retry, most of them lose the race to create Optuna's tables
    assert open_together(f"sqlite:///{tmp_path}/new.db") == [(0, "")] * 6
