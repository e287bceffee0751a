"""Fixtures of the experiment-queue tests: a real PostgreSQL server, a SQLite file, fast experiment settings."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest

#: An experiment that trains in about a second: 32 images per split at 32 px, one epoch, no report, no guard.
FAST = ("limit=32", "image_size=32", "epochs=1", "batch_size=16", "workers=0", "report=false", "guard=false")


def _initdb() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_server():
    """A throwaway PostgreSQL server on loopback (Debian's package; `.ci/run` installs it), stopped and deleted
    after the session; yields a function that creates an empty database and returns its URL. Skips without the
    package, except under CI."""
    pytest.importorskip("psycopg2", reason="psycopg2-binary is not installed: pip install -e '.[dev]'")
    bin_dir = _initdb()
    if bin_dir is None:
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not installed; .ci/run installs Debian's postgresql package")
        pytest.skip("PostgreSQL is not installed: apt-get install postgresql (or run .ci/run)")
    folder = Path(tempfile.mkdtemp(prefix="medtune-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = _free_port()
    data = folder / "data"

    def run(*cmd: object) -> None:
        subprocess.run([*as_user, *map(str, cmd)], check=True, capture_output=True, timeout=120)

    run(bin_dir / "initdb", "-D", data, "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
    options = f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off -c synchronous_commit=off"
    run(bin_dir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "-o", options, "start")
    count = 0

    def create() -> str:
        nonlocal count
        count += 1
        run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", f"medtune{count}")
        return f"postgresql://postgres@127.0.0.1:{port}/medtune{count}"

    def stop() -> None:  # a server that goes away: connections dropped, nothing accepted until start()
        run(bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "stop")

    def start() -> None:
        run(bin_dir / "pg_ctl", "-D", data, "-l", folder / "server.log", "-w", "-t", "60", "-o", options, "start")

    create.stop, create.start = stop, start  # type: ignore[attr-defined]
    try:
        yield create
    finally:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", data, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server):
    """An empty database of its own on the session's PostgreSQL server."""
    return postgres_server()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'queue.db'}"
