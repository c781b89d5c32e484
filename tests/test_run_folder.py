"""Run folders: taken by one process at a time, found again to resume, never deleted by another process."""
import json

import pytest

from hwsearch.errors import RunError
from hwsearch.config import check_run_id
from hwsearch.runs.folder import RECORD, RunFolder, interrupted_runs


def test_an_exact_id_is_taken_once_and_a_default_id_takes_the_next_free_name(tmp_path):
    first = RunFolder.create(tmp_path, "run", exact=True)
    assert first.path == tmp_path / ".run.partial" and (first.path / ".lock").exists()
    with pytest.raises(RunError, match=r"run run is already running in .*\.run\.partial \(process \d+ on "):
        RunFolder.create(tmp_path, "run", exact=True)
    second = RunFolder.create(tmp_path, "run", exact=False)
    assert second.run_id == "run-2"
    first.write_record({"run_id": "run"})
    assert first.finish() == tmp_path / "run" and (tmp_path / "run" / RECORD).exists()
    assert not (tmp_path / "run" / ".lock").exists()
    with pytest.raises(RunError, match="results folder .* already exists"):
        RunFolder.create(tmp_path, "run", exact=True)
    assert RunFolder.create(tmp_path, "run", exact=False).run_id == "run-3"


def test_an_interrupted_run_is_listed_resumed_by_id_or_path_and_locked(tmp_path):
    folder = RunFolder.create(tmp_path, "cut", exact=True)
    folder.write_record({"run_id": "cut", "workers": []})
    assert interrupted_runs(tmp_path) == []                       # its process holds it
    folder.release()                                              # as a SIGKILL would
    assert interrupted_runs(tmp_path) == [tmp_path / ".cut.partial"]
    with pytest.raises(RunError, match="an interrupted run cut is in .* continue it with hwsearch --resume"):
        RunFolder.create(tmp_path, "cut", exact=True)
    resumed = RunFolder.resume(tmp_path, "cut")
    assert resumed.path == tmp_path / ".cut.partial" and resumed.record["run_id"] == "cut"
    with pytest.raises(RunError, match="run cut is still running"):
        RunFolder.resume(tmp_path, str(tmp_path / ".cut.partial"))
    resumed.add_worker()
    assert len(json.loads((resumed.path / RECORD).read_text())["workers"]) == 1


@pytest.mark.parametrize("setup, run, message", [
    (lambda t: None, "nothing", "names no run"),
    (lambda t: (t / "plain").mkdir(), "{t}/plain", "has no run.json .not a run folder"),
    (lambda t: (t / ".early.partial").mkdir(), "early", "interrupted before it started"),
    (lambda t: ((t / "done").mkdir(), (t / "done" / RECORD).write_text("{}")), "done", "is finished"),
    (lambda t: ((t / ".torn.partial").mkdir(), (t / ".torn.partial" / RECORD).write_text("{\"run")), "torn",
     "run.json cannot be read"),
])
def test_what_cannot_be_resumed_says_why(tmp_path, setup, run, message):
    setup(tmp_path)
    with pytest.raises(RunError, match=message):
        RunFolder.resume(tmp_path, run.format(t=tmp_path))


@pytest.mark.parametrize("run_id, message", [("../up", "not a plain folder name"), (".hidden", "not a plain"),
                                             ("a" * 121, "121 characters long; give at most 120")])
def test_run_ids_are_plain_short_folder_names(run_id, message):
    with pytest.raises(RunError, match=message):
        check_run_id(run_id)
