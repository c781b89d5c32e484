"""Every row of docs/bad-input.md, run as written: one line on stderr, the documented exit code,
no traceback, no new run folder.

Rows are read from the table itself, so a row added to the doc is a test. In a command,
`{0*400}` stands for 400 zeros; in a message, `…` stands for any text (paths of this
machine, a driver's wording). Commands run in-process through `hwsearch.commands.main`, from a
scratch folder holding tests/bad_input/ as `bad/`, a file `afile`, a folder `somefolder`,
a finished run `results/done`, and compressed files made for the purpose.
"""
import json
import re
import shlex
import shutil
import struct
import zlib
from pathlib import Path

import pytest
import torch

from hwsearch.export import artifact
from hwsearch import commands as cli
from hwsearch.compression import Option, apply_
from hwsearch.workloads import build_model, load_workload

DOC = Path(__file__).resolve().parent.parent / "docs" / "bad-input.md"
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*`(hwsearch[^`]*)`\s*\|\s*`([^`]*)`\s*\|\s*(\d)\s*\|\s*$")


def rows() -> list[tuple[int, str, str, int]]:
    found = [ROW.match(line) for line in DOC.read_text(encoding="utf-8").splitlines()]
    return [(int(m.group(1)), m.group(2), m.group(3).replace("\\|", "|"), int(m.group(4))) for m in found if m]


def expand(command: str) -> list[str]:
    """The command's arguments, `{c*n}` written out as n copies of c."""
    text = re.sub(r"\{(.)\*(\d+)\}", lambda m: m.group(1) * int(m.group(2)), command)
    return shlex.split(text)[1:]


def matches(message: str, line: str) -> bool:
    return re.fullmatch(".*".join(re.escape(part) for part in message.split("…")), line) is not None


@pytest.fixture(scope="module")
def sandbox(model_cache, tmp_path_factory):
    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(Path(__file__).parent / "bad_input", root / "bad")
    (root / "afile").write_text("a file, not a folder\n")
    (root / "somefolder").mkdir()
    (root / "results" / "done").mkdir(parents=True)
    (root / "results" / "done" / "run.json").write_text('{"version": 1, "run_id": "done"}\n')
    model = build_model("lenet5_digits")
    names = [n for n, m in model.named_modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    apply_(model, {name: Option(bits=8) for name in names})
    artifact.save(model, root / "good.hws", model_spec={"name": "lenet5_digits", "kwargs": {}}, layer_names=names)
    data = (root / "good.hws").read_bytes()
    (root / "bad" / "truncated.hws").write_bytes(data[: len(data) // 2])
    middle = len(data) // 2
    (root / "bad" / "bitflip.hws").write_bytes(data[:middle] + bytes([data[middle] ^ 0x04]) + data[middle + 1:])
    for name, spec, dense in (("crafted-builder", {"builder": "os:getpid"}, []),           # files crafted to run code
                              ("crafted-model", {"name": "os"}, []),
                              ("crafted-dtype", {"name": "lenet5_digits"}, [["conv1.weight", "load", [6, 1, 5, 5]]])):
        meta = json.dumps({"format": "hwsearch-compressed", "model": spec, "layers": [], "dense": dense}).encode()
        body = struct.pack("<4sHI", b"HWSC", 2, len(meta)) + meta
        (root / "bad" / f"{name}.hws").write_bytes(body + struct.pack("<I", zlib.crc32(body)))
    load_workload("lenet5_digits", cache_dir=model_cache)      # rows that get as far as the model find it trained
    return root


def listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def run(command: str, sandbox: Path, model_cache: Path, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.chdir(sandbox)
    monkeypatch.setenv("HWSEARCH_CACHE", str(model_cache))
    code = cli.main(expand(command))
    return code, capsys.readouterr().err


def test_the_table_has_at_least_40_rows_numbered_in_order():
    numbers = [number for number, *_ in rows()]
    assert len(numbers) >= 40 and numbers == list(range(1, len(numbers) + 1))


@pytest.mark.parametrize("number, command, message, code", rows(), ids=[f"row{r[0]}" for r in rows()])
def test_a_bad_input_gets_its_documented_line(number, command, message, code, sandbox, model_cache, monkeypatch,
                                              capsys):
    before = listing(sandbox / "results")
    got, stderr = run(command, sandbox, model_cache, monkeypatch, capsys)
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert len(lines) == 1 and matches(message, lines[0]), f"row {number}: {stderr}"
    assert got == code, f"row {number}: exit {got}"
    assert listing(sandbox / "results") == before                  # no run folder, partial or not


def test_debug_adds_the_traceback_to_the_same_line(sandbox, model_cache, monkeypatch, capsys):
    got, stderr = run("hwsearch --budget 10MB --target bad/no-fp32.yaml --debug", sandbox, model_cache, monkeypatch,
                      capsys)
    assert got == 2 and stderr.startswith("Traceback") and "TargetError" in stderr
    assert stderr.strip().splitlines()[-1].startswith("hwsearch: error: target file bad/no-fp32.yaml is invalid")


def test_a_bug_is_one_line_with_exit_1_and_the_traceback_with_debug(sandbox, model_cache, monkeypatch, capsys):
    def broken(argv):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setitem(cli.COMMANDS, "targets", broken)
    got, stderr = run("hwsearch targets", sandbox, model_cache, monkeypatch, capsys)
    assert got == 1 and stderr.strip() == ("hwsearch: internal error: ZeroDivisionError: division by zero; this is a "
                                           "bug in hwsearch: run again with --debug for the traceback and report it")
    got, stderr = run("hwsearch targets --debug", sandbox, model_cache, monkeypatch, capsys)
    assert got == 1 and "Traceback" in stderr and "in broken" in stderr
