"""Files written whole or not at all: a temporary name in the same folder, then a rename.

A process killed at any moment (SIGKILL, power loss after the data reached the disk)
leaves the old file or the new one under the final name, never half of one. The
temporary name is unique per writer (process id and a random token), so two processes
writing the same cache entry at the same time each rename a complete file of their own:
the last rename wins and both are whole. A writer killed before its rename leaves a
hidden `.<name>.<pid>.<token>.tmp` beside the target, never the target itself.

    with atomic_write(path, "w") as f:        # text or binary, as open() takes it
        json.dump(summary, f)
    write_bytes(path, data)
    write_text(path, text)
"""
from __future__ import annotations

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator


def temporary_name(path: Path) -> Path:
    """A name beside `path` that no other writer uses: hidden, with this process id and a random token."""
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_write(path: str | Path, mode: str = "wb", **open_kwargs) -> Iterator[IO]:
    """Open a temporary file for writing; on a clean exit, flush it to disk and rename it to `path`.

    On an exception the temporary file is removed and `path` is left as it was.
    """
    if not mode.startswith("w"):
        raise ValueError(f"atomic_write writes whole files: mode must start with 'w', got {mode!r}")
    path = Path(path)
    tmp = temporary_name(path)
    try:
        with open(tmp, mode.replace("w", "x", 1), **open_kwargs) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes(path: str | Path, data: bytes) -> int:
    with atomic_write(path, "wb") as f:
        f.write(data)
    return len(data)


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> None:
    with atomic_write(path, "w", encoding=encoding, newline="") as f:
        f.write(text)
