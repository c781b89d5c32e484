"""The `hwsearch` command: which command runs, and how anything that ends it early is answered (one line, an exit code)."""
from __future__ import annotations

import importlib
import signal
import sys
import traceback

from hwsearch.errors import HwsearchError, RunKept

EXIT_BUG = 1            # an error hwsearch did not foresee: a bug, reported in one line (--debug: the traceback)
EXIT_USAGE = 2


class Interrupted(KeyboardInterrupt):
    """Ctrl-C or SIGTERM during a command that kept what it finished: `note` says where."""

    def __init__(self, note: str):
        super().__init__(note)
        self.note = note


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    received: list[int] = []

    def interrupt(signum, frame):
        # Ctrl-C and SIGTERM alike, from the first line on: unwind, so that the run folder is cleaned or kept
        received.append(signum)
        raise KeyboardInterrupt

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        if argv and argv[0] in COMMANDS:
            return COMMANDS[argv[0]](argv[1:])
        return _command("search")(argv)
    except SystemExit:
        raise
    except BaseException as exc:
        return _report(exc, received, debug)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _report(exc: BaseException, received: list[int], debug: bool) -> int:
    """One line on stderr for anything that ends a command early; the exit code says which kind."""
    if debug:
        traceback.print_exception(exc)
    kept = exc if isinstance(exc, RunKept) else None
    cause = exc.__cause__ if kept is not None and exc.__cause__ is not None else exc
    keep = (f"; {kept.finished} finished trial{'s' * (kept.finished != 1)} kept: hwsearch --resume {kept.path} "
            "continues the run") if kept else ""
    if received or isinstance(cause, KeyboardInterrupt):
        note = next((e.note for e in (exc, cause) if isinstance(e, Interrupted)), None)
        print("hwsearch: interrupted" + (keep or f"; {note or 'no results were written'}"), file=sys.stderr)
        return 128 + (received[0] if received else signal.SIGINT)
    if isinstance(cause, HwsearchError):
        print(f"hwsearch: error: {cause}{keep}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(cause, BrokenPipeError):     # `hwsearch inspect ... | head`: the reader has all it wanted
        sys.stdout = None
        return 0
    if isinstance(cause, OSError):   # an unwritable --results or --cache-dir, a full disk: not a bug
        where = f": {cause.filename}" if cause.filename else ""
        print(f"hwsearch: error: {cause.strerror or cause}{where}; check that the folder exists, is writable and has "
              f"space (--results, --cache-dir){keep}", file=sys.stderr)
        return EXIT_USAGE
    text = str(cause).strip().splitlines()
    print(f"hwsearch: internal error: {type(cause).__name__}{': ' + text[0] if text else ''}{keep}; this is a bug in "
          "hwsearch: run again with --debug for the traceback and report it", file=sys.stderr)
    return EXIT_BUG


def _command(name: str):
    """`hwsearch <name> ...`: its module, imported when the command runs (`hwsearch --help` stays fast)."""
    def run(argv: list[str]) -> int:
        return importlib.import_module(f"hwsearch.commands.{name}").main(argv)
    return run


COMMANDS = {name: _command(name) for name in ("worker", "inspect", "targets", "cost", "validate", "calibrate",
                                                "codesign", "nightly", "compare")}
