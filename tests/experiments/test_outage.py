"""The experiment database goes away during a sweep: a PostgreSQL server stopped and started again while two
workers run, and a SQLite file locked by another process past its timeout. Workers wait with backoff, say so, and
carry on; at the end every experiment finished exactly once and none is left running. And a connection cut the
moment a claim commits: the worker retries and finds its claim again by its token."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

from medtune.errors import DataError
from medtune.experiments import add_experiments
from medtune.experiments.queue import state_of
from medtune.experiments.storage import Outages, QueueStorage
from tests.conftest import medtune, shared_path
from tests.experiments.conftest import FAST


def _workers(url, tmp_path, count=2):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MEDTUNE_STORAGE": url}
    return [subprocess.Popen([sys.executable, "-m", "medtune", "queue", "run", "--workers", "1", "--heartbeat",
                              "1", "--grace", "4", "--name", f"w{i}"], cwd=tmp_path, env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for i in range(count)]  # fmt: skip


def _states(url):
    storage = QueueStorage(url)
    return Counter(trial.state.name for _, trial in storage.trials())


def test_workers_carry_on_after_the_postgresql_server_restarts(postgres_server, tmp_path):
    url = postgres_server()
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    added = medtune("sweep", data, *FAST, "epochs=2", "seed=0,1,2,3", "--storage", url, "--study", "outage",
                    cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    workers = _workers(url, tmp_path)
    deadline = time.monotonic() + 120
    while _states(url).get("RUNNING", 0) == 0:
        assert time.monotonic() < deadline, "no experiment started"
        time.sleep(0.2)
    postgres_server.stop()
    time.sleep(6)  # longer than the grace period: no heartbeat is recorded meanwhile
    postgres_server.start()
    logs = [worker.communicate(timeout=600)[0] for worker in workers]
    assert [w.returncode for w in workers] == [0, 0], "\n".join(logs)
    text = "\n".join(logs)
    assert "database unreachable" in text and "database reachable again" in text
    finished = Counter(re.findall(r"#(\d+) finished", text))
    assert sorted(finished.values()) == [1, 1, 1, 1], text  # every experiment finished once
    assert _states(url) == Counter({"COMPLETE": 4})  # none left running or failed


def test_a_sqlite_file_locked_past_its_timeout_is_waited_for(tmp_path):
    import sqlalchemy

    url = f"sqlite:///{tmp_path / 'queue.db'}"
    QueueStorage(url).create_study("locked")
    engine = sqlalchemy.create_engine(url, connect_args={"timeout": 0.2})  # a worker's writes, a short timeout

    def write():
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE studies SET study_name = study_name")

    blocker = sqlite3.connect(tmp_path / "queue.db", timeout=1, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holds the file
    threading.Timer(2.5, blocker.rollback).start()  # and lets go after 2.5 s
    said: list[str] = []
    outages = Outages(url, grace=4, patience=60)
    started = time.monotonic()
    outages.retry(write, "writing", said.append)
    assert time.monotonic() - started >= 2.0 and any("database unreachable while writing" in s for s in said)
    assert said[-1].startswith("database reachable again") and not outages.settled()  # heartbeats not current yet

    blocker.execute("BEGIN EXCLUSIVE")  # and now for good
    with pytest.raises(DataError, match=r"has been unreachable for \d+ s while writing"):
        Outages(url, grace=4, patience=1.5).retry(write, "writing", said.append)
    blocker.rollback()


class _CutAtCommit:
    """A TCP relay in front of PostgreSQL that, once armed, drops the connection instead of passing on the server's
    answer to the next COMMIT: the transaction is committed, and the client never hears so."""

    COMMITTED = b"C\x00\x00\x00\x0bCOMMIT\x00"  # the server's CommandComplete message for a COMMIT

    def __init__(self, upstream: int) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port, self.upstream = self.listener.getsockname()[1], upstream
        self.armed, self.cuts = False, 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        with contextlib.suppress(OSError):  # the listener closed
            while True:
                client, _ = self.listener.accept()
                server = socket.create_connection(("127.0.0.1", self.upstream))
                threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
                threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, from_server: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if from_server and self.armed and self.COMMITTED in data:
                    self.armed, self.cuts = False, self.cuts + 1
                    break
                sink.sendall(data)
        for sock in (source, sink):  # the other pump sees the end too
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        source.close()


def test_a_claim_committed_as_its_connection_drops_is_found_again_by_its_token(postgres_url, tmp_path):
    import sqlalchemy as sa

    relay = _CutAtCommit(sa.engine.make_url(postgres_url).port)
    url = sa.engine.make_url(postgres_url).set(port=relay.port).render_as_string(hide_password=False)
    storage = QueueStorage(url, heartbeat=1, grace=4)
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    first, second = add_experiments(storage, [{"data": data}] * 2, "cut", root=tmp_path)

    @sa.event.listens_for(storage.engine, "after_cursor_execute")
    def arm(conn, cursor, statement, *args):  # the claim's UPDATE went through: cut at its commit
        if statement.startswith("UPDATE trials SET state='RUNNING'") and cursor.rowcount == 1 and not relay.cuts:
            relay.armed = True

    said: list[str] = []
    token = "host:1:cutter:0001"
    claimed = Outages(url, grace=4, patience=60).retry(lambda: storage.claim(None, token), "claiming", said.append)
    relay.listener.close()
    assert relay.cuts == 1 and any("database unreachable while claiming" in s for s in said), said
    assert claimed == first  # the retry found the claim that went through instead of taking a second experiment
    trial = storage.trial(first)
    assert state_of(trial) == "running" and trial.user_attrs["worker"] == token
    assert state_of(storage.trial(second)) == "queued"
    assert storage.stale(storage.study_ids(["cut"])) == []  # it has its first heartbeat, from the same commit
