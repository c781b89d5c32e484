"""Searches run unattended, again and again: a matrix of runs from a file, and their comparison.

    nightly = load_nightly("nightly.yaml")        # checked whole before anything runs
    report = run_nightly(nightly)                 # each entry into its own run folder; nightly.json
    regressions = compare("old/nightly.json", "new/nightly.json")["regressions"]

`file` parses and checks the nightly file; `run` runs its entries (idempotent, failures
isolated, nightly.json written atomically); `comparison` lists the regressions between two
runs or two nightlies (`hwsearch compare`).
"""
from hwsearch.nightly.comparison import CompareError, Tolerances, compare, format_table
from hwsearch.nightly.file import Entry, Nightly, NightlyError, load_nightly
from hwsearch.nightly.run import NIGHTLY_VERSION, exit_code, run_nightly

__all__ = ["NIGHTLY_VERSION", "CompareError", "Entry", "Nightly", "NightlyError", "Tolerances", "compare", "exit_code",
           "format_table", "load_nightly", "run_nightly"]
