"""argparse, answered in one line: every command's parser is a `Parser`.

argparse prints its usage and an error on two or more lines and exits; a `Parser` raises
`UsageError` with one line instead (the CLI prints it and exits 2), names the option a
mistyped one is closest to (`--budgett` -> `--budget`), never takes an abbreviation for
an option (`--trial 2` is not `--trials 2`), and reads `--budget -5MB` as the value
`-5MB` (which the budget parser then refuses for what it is) rather than as an option.
"""
from __future__ import annotations

import argparse
import difflib
import re
import sys

from hwsearch.errors import UsageError


class Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def parse_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_args(self._values_that_look_like_options(args), namespace)

    def _values_that_look_like_options(self, argv: list[str]) -> list[str]:
        """`--budget -5MB` as `--budget=-5MB`: a value, since -5MB is no option of this parser."""
        out, i = [], 0
        while i < len(argv):
            token = argv[i]
            action = self._option_string_actions.get(token)
            takes_value = action is not None and action.nargs is None and not isinstance(
                action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse._HelpAction))
            if (takes_value and i + 1 < len(argv) and argv[i + 1].startswith("-")
                    and argv[i + 1].split("=")[0] not in self._option_string_actions):
                out.append(f"{token}={argv[i + 1]}")
                i += 2
                continue
            out.append(token)
            i += 1
        return out

    def error(self, message: str):
        raise UsageError(f"{self._explain(message)} (see {self.prog} --help)")

    def _explain(self, message: str) -> str:
        unknown = re.match(r"unrecognized arguments: (.*)", message)
        if unknown:
            words = unknown.group(1).split()
            option = next((w.split("=")[0] for w in words if w.startswith("-")), None)
            if option is None:
                return f"unexpected argument {words[0]!r}"
            known = [o for o in self._option_string_actions if o.startswith("--")]
            close = difflib.get_close_matches(option, known, n=1, cutoff=0.6)
            return f"unknown option {option}" + (f": did you mean {close[0]}?" if close else "")
        invalid = re.match(r"argument (\S+?)(?:/\S+)?: invalid (int|float) value: (.*)", message)
        if invalid:
            kind = "a whole number" if invalid.group(2) == "int" else "a number"
            return f"{invalid.group(1)} {invalid.group(3)} is not {kind}"
        choice = re.match(r"argument (\S+?)(?:/\S+)?: invalid choice: (.*) \(choose from (.*)\)", message)
        if choice:
            return f"{choice.group(1)} {choice.group(2)} is not one of {choice.group(3)}"
        return message
