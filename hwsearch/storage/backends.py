"""Where a study lives: `--storage URL`.

    (none)                               the journal file `study.journal` in the run folder
    path/to/studies.journal              a journal file elsewhere (one process at a time)
    sqlite:///path/to/studies.db         SQLite: several processes on one machine
    postgresql://user@host:5432/dbname   PostgreSQL: several processes on several machines

A journal file is Optuna's fastest storage (every write is one append, synced at trial
state changes: hwsearch.storage.journal) and is what `optuna-dashboard` opens as it is. Database storages add a heartbeat per running
trial, which is what lets `hwsearch worker` processes share a study: a trial whose
process stops beating for `GRACE_BEATS` intervals is marked failed and retried.

Every way a URL can be wrong (unknown scheme, missing driver, unreachable server, bad
credentials, a missing folder) is one `StorageError` naming the URL, with its password
masked, and what to do.
"""
from __future__ import annotations

import time
import warnings
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import BaseStorage, JournalStorage, RetryHeartbeatStaleTrialCallback
from hwsearch.errors import StorageError
from hwsearch.storage.journal import TrialSyncedJournal
from hwsearch.storage.trial_queue import MAX_RETRIES

JOURNAL = "study.journal"       # the run folder's own storage
DATABASES = ("sqlite", "postgresql", "mysql")
GRACE_BEATS = 3                 # heartbeats a trial may miss before it counts as dead
CONNECT_TIMEOUT_S = 10
SCHEMA_ATTEMPTS = 5
EXAMPLES = "a journal file (runs/studies.journal), sqlite:///studies.db or postgresql://user@host:5432/dbname"


def masked(url: str) -> str:
    """The URL with its password, if any, replaced by ***: what messages and summaries show."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{netloc[1]}"))


def kind(url: str | None) -> str:
    """journal, sqlite, postgresql or mysql; StorageError for anything else."""
    if url is None:
        return "journal"
    scheme = urlsplit(url).scheme.split("+")[0].lower() if "://" in url else ""
    if scheme in DATABASES:
        return scheme
    if not scheme and Path(url).suffix in (".journal", ".log"):
        return "journal"
    raise StorageError(f"--storage {masked(url)!r} is not a storage hwsearch opens: give {EXAMPLES}")


def open_storage(url: str | None, *, run_folder: Path | None = None, heartbeat_s: int | None = None) -> BaseStorage:
    """An Optuna storage for `url` (None: the run folder's journal), connected and checked.

    `heartbeat_s` sets the heartbeat of database storages (a trial silent for
    GRACE_BEATS x heartbeat_s seconds is failed and retried); journal files have none.
    """
    which = kind(url)
    if which == "journal":
        path = Path(url) if url is not None else Path(run_folder) / JOURNAL
        if not path.parent.is_dir():
            raise StorageError(f"--storage {path}: folder {path.parent} does not exist; create it or give another path")
        try:
            return JournalStorage(TrialSyncedJournal(str(path)))
        except OSError as exc:
            raise StorageError(f"--storage {path} cannot be opened ({exc.strerror}); check the path and its "
                               "permissions") from None
    return _database(url, which, heartbeat_s)


def _database(url: str, which: str, heartbeat_s: int | None) -> BaseStorage:
    import sqlalchemy.exc

    engine_kwargs = {"pool_pre_ping": True}
    if which == "postgresql":
        engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        with warnings.catch_warnings():        # the heartbeat is marked experimental in Optuna
            warnings.simplefilter("ignore", ExperimentalWarning)
            beat = {} if heartbeat_s is None else {
                "heartbeat_interval": heartbeat_s, "grace_period": GRACE_BEATS * heartbeat_s,
                "heartbeat_stale_trial_callback": RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)}
            for attempt in range(SCHEMA_ATTEMPTS):
                try:
                    storage = optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs, **beat)
                    break
                except sqlalchemy.exc.SQLAlchemyError as exc:
                    # processes opening a new database together (a run and its workers, started at once) race
                    # to create Optuna's tables; the losers find them made and open the database again
                    if attempt == SCHEMA_ATTEMPTS - 1 or not _lost_schema_race(exc):
                        raise
                    time.sleep(0.2 * (attempt + 1))
    except ImportError as exc:          # Optuna wraps the driver's ModuleNotFoundError
        missing = getattr(exc.__cause__, "name", None) or getattr(exc, "name", None) or "its database driver"
        driver = {"psycopg": "'psycopg[binary]'", "psycopg2": "psycopg2-binary", "pymysql": "PyMySQL",
                  "MySQLdb": "mysqlclient"}.get(missing, missing)
        raise StorageError(f"--storage {masked(url)} needs the database driver {missing}: pip install {driver}") from None
    except sqlalchemy.exc.ArgumentError as exc:
        raise StorageError(f"--storage {masked(url)!r} is not a valid database URL ({_first_line(exc)}); give "
                           f"{EXAMPLES}") from None
    except sqlalchemy.exc.OperationalError as exc:
        raise StorageError(f"cannot connect to --storage {masked(url)}: {_first_line(exc.orig or exc)}; "
                           + _hint(which)) from None
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(f"--storage {masked(url)} failed: {_first_line(exc)}; " + _hint(which)) from None
    return optuna.storages.get_storage(storage)      # Optuna's cache in front of the database, as create_study adds


def _lost_schema_race(exc: Exception) -> bool:
    text = str(getattr(exc, "orig", None) or exc).lower()
    return any(sign in text for sign in ("already exists", "duplicate key", "unique constraint", "database is locked"))


def _hint(which: str) -> str:
    if which == "sqlite":
        return "check that the folder exists and is writable"
    return "check the host, port, database name and credentials, and that the server is running (README: PostgreSQL)"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0].strip() if text else type(exc).__name__


def repair_journal(path: Path) -> int:
    """Cut a journal file back to its last whole entry; returns the bytes dropped.

    Each entry is appended with one write, but a write cut short (a full disk, a machine
    losing power before the entry was synced) leaves half a line; the next append would
    glue onto it and make the whole file unreadable. Call only while no other process
    writes the file (the run's lock is held). A lock file left by a writer killed while
    it held it (which would stall the next writer for Optuna's 30-second grace period)
    is removed too.
    """
    lock = Path(str(path) + ".lock")
    if lock.is_symlink() or lock.exists():
        lock.unlink()
    if not path.is_file():
        return 0
    data = path.read_bytes()
    keep = data.rfind(b"\n") + 1
    if keep == len(data):
        return 0
    with path.open("r+b") as f:
        f.truncate(keep)
    return len(data) - keep
