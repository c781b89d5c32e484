"""Errors a user can act on. The CLI prints their message as one line and exits 2.

Every message says the rule, the value that broke it and how to fix it.
"""


class HwsearchError(Exception):
    """Root of the errors hwsearch reports to a user (never a bug in hwsearch)."""


class BudgetError(HwsearchError):
    """A budget string that cannot be parsed."""


class BudgetInfeasible(HwsearchError):
    """A budget that no combination of the per-layer options can meet."""


class TargetError(HwsearchError):
    """A target that is unknown, or whose YAML is malformed or invalid."""


class ModelError(HwsearchError):
    """A model that cannot be built, loaded or traced."""


class ArtifactError(HwsearchError):
    """A compressed file that is corrupt, truncated or of another format version."""


class DataError(HwsearchError):
    """User data (a `--data` loader's splits, an `--eval` metric) of the wrong kind or shape."""


class OptionError(HwsearchError, ValueError):
    """A compression option (or plan) that breaks a rule, or one a layer cannot take."""


class UsageError(HwsearchError):
    """A command line argparse cannot read: an unknown option, a missing value."""


class StorageError(HwsearchError):
    """A --storage URL that names no storage, or one that cannot be opened or reached."""


class RunError(HwsearchError):
    """A run folder that cannot be created or resumed: taken, in progress, finished, or not a run."""


class RunKept(Exception):
    """A run stopped (interrupted, or failed) after some of its trials finished: its folder is kept for `--resume`.

    Not a HwsearchError: the reason is the exception it is raised from (`__cause__`)."""

    def __init__(self, path, finished: int):
        super().__init__(f"{finished} finished trials kept in {path}")
        self.path, self.finished = path, finished
