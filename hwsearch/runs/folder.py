"""A run's folder: `results/.<id>.partial` while a run works in it, `results/<id>` once it is done.

    folder = RunFolder.create(Path("results"), "cortex-a76-10MB-lenet5_digits-20261124-101500", exact=False)
    folder.write_record(record)        # run.json: the resolved config, the target's text, the storage
    ...                                # tables, study, retraining, export, all inside folder.path
    folder.finish()                    # renamed to results/<id>

The process working in a folder holds an exclusive lock on its `.lock` file (fcntl), which
the kernel drops when the process ends in any way, SIGKILL included. So a partial folder
whose lock can be taken belongs to no live process: it is an interrupted run, and
`RunFolder.resume(results, "ID or path")` takes it over (`hwsearch --resume`). A folder is
never deleted by a process that does not hold its lock, so a second run with the same
`--run-id` fails without touching the first run's files.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path

from hwsearch.atomic_write import write_text
from hwsearch.config import RUN_ID, check_run_id
from hwsearch.errors import RunError
from hwsearch.storage.trial_queue import WORKER

RECORD = "run.json"
LOCK = ".lock"


def partial_name(run_id: str) -> str:
    return f".{run_id}.partial"


class RunFolder:
    """A run folder this process holds the lock of."""

    def __init__(self, path: Path, run_id: str, lock_fd: int):
        self.path, self.run_id, self._lock_fd = path, run_id, lock_fd

    @property
    def final(self) -> Path:
        return self.path.with_name(self.run_id)

    @classmethod
    def create(cls, results_dir: Path, run_id: str, *, exact: bool) -> "RunFolder":
        """A new partial folder for `run_id`; with `exact=False`, `run_id-2`, `-3`, ... when the name is taken."""
        check_run_id(run_id)
        if results_dir.exists() and not results_dir.is_dir():
            raise RunError(f"--results {results_dir} is a file, not a folder; give a folder for run folders")
        try:
            results_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunError(f"--results {results_dir} cannot be created ({exc.strerror}); give a folder you can "
                           "write") from None
        for attempt in range(1, 1000):
            name = run_id if attempt == 1 else f"{run_id}-{attempt}"
            path = results_dir / partial_name(name)
            if not (results_dir / name).exists():
                try:
                    path.mkdir()
                except FileExistsError:
                    pass
                else:
                    lock_fd = _try_lock(path)
                    if lock_fd is not None and not (results_dir / name).exists():
                        return cls(path, name, lock_fd)
                    if lock_fd is not None:            # a run of that name finished meanwhile: not ours to use
                        os.close(lock_fd)
                        shutil.rmtree(path, ignore_errors=True)
            if exact:
                raise RunError(_taken(results_dir, name))
        raise RunError(f"no free run folder name for {run_id} in {results_dir}; pass --run-id")

    @classmethod
    def resume(cls, results_dir: Path, run: str) -> "RunFolder":
        """The interrupted run `run` (its id, or the path of its folder), locked for this process."""
        given = Path(run)
        if given.is_dir():
            path = given
        elif RUN_ID.fullmatch(run) and (results_dir / partial_name(run)).is_dir():
            path = results_dir / partial_name(run)
        elif RUN_ID.fullmatch(run) and (results_dir / run).is_dir():
            path = results_dir / run
        else:
            raise RunError(f"--resume {_short(run)!r} names no run: give the id of an interrupted run (its folder is "
                           f"{results_dir}/.<id>.partial) or the path of that folder")
        interrupted = path.name.startswith(".") and path.name.endswith(".partial")
        if not (path / RECORD).is_file():
            raise RunError(f"{path} is not a run hwsearch can resume: it has no {RECORD} ("
                           + ("it was interrupted before it started; remove the folder and start the run again)"
                              if interrupted else "not a run folder); give the id of an interrupted run or its "
                              f"{results_dir}/.<id>.partial folder"))
        if not interrupted:
            raise RunError(f"run {path.name} is finished ({path}): nothing to resume; start a new run instead")
        run_id = path.name[1:-len(".partial")]
        lock_fd = _try_lock(path)
        if lock_fd is None:
            raise RunError(f"run {run_id} is still running ({_holder(path)}); wait for it, or stop that process first")
        folder = cls(path, run_id, lock_fd)
        try:
            folder.record
        except RunError:
            folder.release()
            raise
        return folder

    @property
    def record(self) -> dict:
        try:
            return json.loads((self.path / RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise RunError(f"{self.path / RECORD} cannot be read ({type(exc).__name__}); this run cannot be "
                           "resumed: remove the folder and start it again") from None

    def write_record(self, record: dict) -> None:
        write_text(self.path / RECORD, json.dumps(record, indent=1) + "\n")

    def add_worker(self) -> dict:
        """Note this process in the record (its trials left running are its own on a later resume)."""
        record = self.record
        record["workers"] = [*record.get("workers", []), WORKER]
        self.write_record(record)
        return record

    def finish(self) -> Path:
        """Rename the folder to its final name; returns it."""
        final = self.final
        self.path.rename(final)
        self.path = final
        (final / LOCK).unlink(missing_ok=True)
        self.release()
        return final

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def interrupted_runs(results_dir: Path) -> list[Path]:
    """Partial folders in `results_dir` that no live process holds: runs `hwsearch --resume` can continue."""
    out = []
    for path in sorted(results_dir.glob(".*.partial")) if results_dir.is_dir() else ():
        lock_fd = _try_lock(path, create=False)
        if lock_fd is not None:
            os.close(lock_fd)
            out.append(path)
    return out


def _try_lock(path: Path, *, create: bool = True) -> int | None:
    """An fd holding the folder's exclusive lock, or None if another process holds it (or, with
    `create=False`, if the folder has no lock file: it was never taken)."""
    lock = path / LOCK
    if not create and not lock.exists():
        return None
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    if create:                  # taking the folder, not probing it: say who holds it
        os.ftruncate(fd, 0)
        os.write(fd, f"{WORKER}\n".encode())
    return fd


def _holder(path: Path) -> str:
    try:
        host, _, pid = (path / LOCK).read_text().strip().rpartition(":")
        return f"process {pid} on {host}"
    except OSError:
        return "another process"


def _taken(results_dir: Path, name: str) -> str:
    if (results_dir / name).exists():
        return f"results folder {results_dir / name} already exists; pass another --run-id or remove it"
    partial = results_dir / partial_name(name)
    lock_fd = _try_lock(partial, create=False)
    if lock_fd is None and (partial / LOCK).exists():
        return f"run {name} is already running in {partial} ({_holder(partial)}); pass another --run-id"
    if lock_fd is not None:
        os.close(lock_fd)
    return (f"an interrupted run {name} is in {partial}: continue it with hwsearch --resume {partial}, or remove "
            "the folder")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"
