"""Files written whole or not at all, with real processes killed at arbitrary moments."""
import os
import signal
import subprocess
import sys
import time

import pytest

from hwsearch.atomic_write import atomic_write, write_bytes, write_text

SIZE = 3_000_000
WRITER = """
import sys
from hwsearch.atomic_write import write_bytes
letter = sys.argv[2].encode()
i = 0
while True:
    write_bytes(sys.argv[1], (letter if i % 2 else letter.lower()) * {size})
    i += 1
""".format(size=SIZE)


def writers(path, letters):
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    return [subprocess.Popen([sys.executable, "-c", WRITER, str(path), letter], env=env) for letter in letters]


def whole(path) -> bool:
    data = path.read_bytes()
    return len(data) == SIZE and data.count(data[:1]) == SIZE


@pytest.mark.parametrize("letters", ["A", "AB"], ids=["one writer", "two writers on one file"])
def test_a_writer_killed_at_any_moment_leaves_a_whole_file(tmp_path, letters):
    path = tmp_path / "table.bin"
    for round_ in range(6):
        procs = writers(path, letters)
        deadline = time.monotonic() + 120
        while not path.exists():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        time.sleep(0.05 * round_)            # a different moment each round; the file must be whole at every one
        for proc in procs:
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
            assert proc.returncode == -signal.SIGKILL
        assert whole(path), f"round {round_}: {len(path.read_bytes())} bytes"
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["table.bin"]


def test_an_error_while_writing_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "summary.json"
    write_text(path, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_write(path, "w") as f:
            f.write("half of the new")
            raise RuntimeError("disk full")
    assert path.read_text() == "old\n" and list(tmp_path.iterdir()) == [path]
    assert write_bytes(path, b"new") == 3 and path.read_bytes() == b"new"
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
