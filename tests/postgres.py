"""A real PostgreSQL server for the tests: `initdb` and `pg_ctl` in a temporary folder, on a free loopback port.

Debian's `postgresql` package provides the binaries (`.ci/run` installs it where it is
missing). There is no skipping: without them the fixture fails and says what to install.
As root (CI), the server runs as the `postgres` user the package creates, since PostgreSQL
refuses to run as root. fsync is off: the tests kill client processes, not the machine.
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest


def find_binaries() -> Path:
    """The folder holding initdb and pg_ctl: $PG_BIN, Debian's /usr/lib/postgresql/<version>/bin, or the PATH."""
    candidates = [os.environ.get("PG_BIN", "")] + sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for folder in filter(None, candidates):
        if (Path(folder) / "initdb").is_file() and (Path(folder) / "pg_ctl").is_file():
            return Path(folder)
    pytest.fail("PostgreSQL's initdb and pg_ctl were not found: install Debian's postgresql package "
                "(apt-get install -y postgresql; .ci/run does) or set PG_BIN to their folder")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self):
        self.bin = find_binaries()
        self.root = Path(tempfile.mkdtemp(prefix="hwsearch-pg-"))
        self.data, self.log = self.root / "data", self.root / "server.log"
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.port = None

    def _run(self, *args, timeout=180):
        proc = subprocess.run([*self.as_owner, *map(str, args)], capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            pytest.fail(f"{Path(str(args[0])).name} failed ({proc.returncode}): {proc.stderr.strip()} {log[-2000:]}")
        return proc

    def start(self) -> str:
        self._run(self.bin / "initdb", "-D", self.data, "-U", "hwsearch", "--auth=trust", "--no-sync", "-E", "UTF8")
        for attempt in range(3):          # the port is free when chosen; another process may take it first
            self.port = free_port()
            options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                       "-c synchronous_commit=off -c max_connections=100")
            proc = subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                                   "-o", options, "-w", "-t", "120", "start"], capture_output=True, text=True,
                                  timeout=180)
            if proc.returncode == 0:
                return f"postgresql://hwsearch@127.0.0.1:{self.port}/postgres"
        pytest.fail(f"pg_ctl start failed: {proc.stderr.strip()} {self.log.read_text()[-2000:]}")

    def stop(self):
        subprocess.run([*self.as_owner, str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"],
                       capture_output=True, timeout=120)
        shutil.rmtree(self.root, ignore_errors=True)
