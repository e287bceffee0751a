"""The queue's database operations on real SQLite and PostgreSQL, raced by real processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import time
from collections import Counter

import pytest
import sqlalchemy as sa
import yaml

from medtune.errors import ConfigError, DataError
from medtune.experiments import QueueStorage, add_experiments
from medtune.experiments.queue import cancel, retry, state_of
from medtune.experiments.worker import Worker, WorkerOptions
from tests.conftest import shared_path
from tests.experiments.conftest import FAST
from tests.experiments.racers import claimer, race, reaper


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("postgres_url")


def _queue(url: str, count: int, study: str) -> list[int]:
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    return add_experiments(QueueStorage(url), [{"data": data, "epochs": 1}] * count, study)


def test_each_queued_trial_is_claimed_by_exactly_one_of_four_processes(url, request):
    study = f"race-{request.node.callspec.id}-{time.monotonic_ns()}"
    ids = _queue(url, 40, study)
    results = race(claimer, lambda i: (url,), 4)
    claims = Counter(t for part in results for t in part if t in ids)
    assert sorted(claims) == sorted(ids)
    assert max(claims.values()) == 1, {t: n for t, n in claims.items() if n > 1}
    assert sum(1 for part in results if part) >= 2  # they really did share the queue
    storage = QueueStorage(url)
    assert storage.count("WAITING", storage.study_ids([study])) == 0
    assert storage.count("RUNNING", storage.study_ids([study])) == len(ids)


def test_a_silent_trial_is_requeued_once_however_many_workers_notice(url, request):
    study = f"stale-{request.node.callspec.id}-{time.monotonic_ns()}"
    ids = _queue(url, 6, study)
    storage = QueueStorage(url, heartbeat=1, grace=2)
    claimed = [storage.claim(storage.study_ids([study])) for _ in ids]
    assert sorted(claimed) == sorted(ids)
    assert storage.stale(storage.study_ids([study])) == []  # fresh heartbeats: nobody is silent yet
    time.sleep(3.5)  # no heartbeat for longer than the grace period: as if their worker was killed
    results = race(reaper, lambda i: (url, study), 3)
    requeued = Counter(t for part in results for t in part)
    assert sorted(requeued) == sorted(ids) and max(requeued.values()) == 1
    assert storage.count("WAITING", storage.study_ids([study])) == len(ids)
    # the heartbeat row went with it: claimed again, a trial is not stale at once
    again = storage.claim(storage.study_ids([study]))
    assert again in ids and again not in storage.stale(storage.study_ids([study]))


#: A worker killed the moment its claim is committed: at the first statement after the commit of the claiming
#: transaction, or when `claim` returns, whichever comes first (the hook lives only in this process).
_CLAIM_THEN_DIE = """
import os, sys
import sqlalchemy as sa
from medtune.experiments import QueueStorage

storage, moment = QueueStorage(sys.argv[1], heartbeat=1, grace=2), []

@sa.event.listens_for(storage.engine, "after_cursor_execute")
def claimed(conn, cursor, statement, *args):
    if statement.startswith("UPDATE trials SET state='RUNNING'") and cursor.rowcount == 1:
        moment.append("claimed")

@sa.event.listens_for(storage.engine, "commit")
def committing(conn):
    if moment == ["claimed"]:
        moment.append("committed")

@sa.event.listens_for(storage.engine, "before_cursor_execute")
def next_statement(conn, cursor, statement, *args):
    if "committed" in moment:
        os._exit(17)

storage.claim(storage.study_ids([sys.argv[2]]))
os._exit(17 if "committed" in moment else 3)
"""


@pytest.mark.slow
def test_a_claim_whose_worker_dies_right_after_the_commit_is_taken_back_and_runs(url, request, tmp_path):
    study = f"orphan-{request.node.callspec.id}"
    storage = QueueStorage(url, heartbeat=1, grace=2)
    values = {"data": str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))}
    values.update((k, yaml.safe_load(v)) for k, v in (item.split("=", 1) for item in FAST))
    (trial_id,) = add_experiments(storage, [values], study, root=tmp_path / "runs")
    died = subprocess.run([sys.executable, "-c", _CLAIM_THEN_DIE, url, study], capture_output=True, text=True,
                          timeout=120)  # fmt: skip
    assert died.returncode == 17, died.stderr  # killed after its claim committed, before anything else
    ids = storage.study_ids([study])
    assert state_of(storage.trial(trial_id)) == "running" and storage.stale(ids) == []  # not silent for long yet
    time.sleep(3.5)  # longer than the grace period
    assert storage.stale(ids) == [trial_id]  # (a worker would otherwise wait for it for ever)
    said: list[str] = []
    summary = Worker(storage, WorkerOptions(studies=[study], name="rescuer"), log=said.append).run()
    assert summary.recovered == [trial_id] and summary.finished == [trial_id], said
    trial = storage.trial(trial_id)
    assert state_of(trial) == "finished" and trial.user_attrs["claims"] == 1 and trial.user_attrs["recovered"] == 1


def test_a_trial_left_running_without_a_heartbeat_is_taken_back_once(url, request):
    study = f"beatless-{request.node.callspec.id}"
    first, second = _queue(url, 2, study)
    storage = QueueStorage(url, heartbeat=1, grace=2)
    claim = sa.text("UPDATE trials SET state='RUNNING', datetime_start=:now WHERE trial_id=:tid")
    with storage.transaction() as conn:  # what a claim by an earlier medtune committed before its worker was killed
        conn.execute(claim, {"now": dt.datetime.now(dt.UTC).replace(tzinfo=None), "tid": first})
    ids = storage.study_ids([study])
    assert storage.claim(ids) == second and storage.stale(ids) == []
    time.sleep(3.5)
    assert storage.stale(ids) == [first, second]  # the claimed one has gone silent too meanwhile
    assert [storage.requeue(first), storage.requeue(first)] == [True, False]
    assert storage.claim(ids) == first and storage.stale(ids) == [second]  # claimed again with a fresh heartbeat


def test_cancel_and_retry(sqlite_url):
    storage = QueueStorage(sqlite_url)
    first, second = _queue(sqlite_url, 2, "queue")
    assert cancel(storage, first) == "cancelled"
    assert state_of(storage.trial(first)) == "cancelled"
    assert storage.claim() == second  # a cancelled trial is never claimed
    assert cancel(storage, second) == "stopping"  # running: its worker is asked to stop
    assert storage.trial(second).user_attrs["queue_state"] == "cancel_requested"
    with pytest.raises(DataError, match="already ended"):
        cancel(storage, first)
    with pytest.raises(DataError, match="is cancelling"):
        retry(storage, second)
    new = retry(storage, first)
    assert state_of(storage.trial(first)) == "retried" and storage.trial(first).user_attrs["retried_as"] == new
    assert state_of(storage.trial(new)) == "queued"
    assert storage.trial(new).user_attrs["config"] == storage.trial(first).user_attrs["config"]
    with pytest.raises(DataError, match="retried as a new id"):
        retry(storage, first)
    with pytest.raises(DataError, match="no experiment 999"):
        cancel(storage, 999)


def test_bad_storage_urls_name_the_fix(tmp_path):
    with pytest.raises(DataError, match="cannot open the experiment database"):
        QueueStorage("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(DataError, match=r"check the URL"):
        QueueStorage("notadb://x")
    with pytest.raises(ConfigError, match="grace period"):
        QueueStorage(f"sqlite:///{tmp_path / 'q.db'}", heartbeat=10, grace=5)
    with pytest.raises(DataError, match="no study 'nope'"):
        QueueStorage(f"sqlite:///{tmp_path / 'q.db'}").study_ids(["nope"])
