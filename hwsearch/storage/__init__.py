"""Where studies live and how processes share them.

    open_storage(None, run_folder=folder)           the run folder's journal file (study.journal)
    open_storage("postgresql://user@host/db")       a database several machines' workers share

`backends` turns a `--storage` URL into an Optuna storage (journal file, SQLite,
PostgreSQL), with one-line errors for every way a URL can be wrong; `journal` syncs the
journal file once per finished trial; `trial_queue` hands out a study's trials as tickets,
each evaluated once however many processes share the study.
"""
from hwsearch.storage import trial_queue
from hwsearch.storage.backends import (DATABASES, EXAMPLES, GRACE_BEATS, JOURNAL, kind, masked, open_storage,
                                       repair_journal)
from hwsearch.storage.journal import TrialSyncedJournal

__all__ = ["DATABASES", "EXAMPLES", "GRACE_BEATS", "JOURNAL", "TrialSyncedJournal", "kind", "masked", "open_storage",
           "repair_journal", "trial_queue"]
