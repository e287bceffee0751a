"""The queue's database operations on real SQLite and PostgreSQL, raced by real processes."""

from __future__ import annotations

import multiprocessing as mp
import time
from collections import Counter

import pytest

from medtune.errors import ConfigError, DataError
from medtune.experiments import QueueStorage, add_experiments
from medtune.experiments.queue import cancel, retry, state_of
from tests.conftest import shared_path


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'queue.db'}"
    return request.getfixturevalue("postgres_url")


def _queue(url: str, count: int, study: str) -> list[int]:
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    return add_experiments(QueueStorage(url), [{"data": data, "epochs": 1}] * count, study)


def _claimer(url: str, start, out) -> None:
    storage = QueueStorage(url)
    studies = storage.study_ids()
    start.wait()
    claimed = []
    while (trial_id := storage.claim(studies)) is not None:
        claimed.append(trial_id)
        time.sleep(0.005)  # a worker does something with its claim before the next one
    out.put(claimed)


class _Start:
    """The starting gun: each process waits on `wait()` after reporting itself ready, so no process races before
    all have started and connected (spawning four interpreters can take seconds on a loaded 2-core machine)."""

    def __init__(self, ctx) -> None:
        self.ready, self.go = ctx.Semaphore(0), ctx.Event()

    def wait(self) -> None:
        self.ready.release()
        self.go.wait()


def _race(target, args_for, processes: int) -> list[list[int]]:
    ctx = mp.get_context("spawn")
    start, out = _Start(ctx), ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(i), start, out)) for i in range(processes)]
    for proc in procs:
        proc.start()
    for _ in procs:
        assert start.ready.acquire(timeout=120), "a racing process did not start"
    start.go.set()
    results = [out.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    return results


def test_each_queued_trial_is_claimed_by_exactly_one_of_four_processes(url, request):
    study = f"race-{request.node.callspec.id}-{time.monotonic_ns()}"
    ids = _queue(url, 40, study)
    results = _race(_claimer, lambda i: (url,), 4)
    claims = Counter(t for part in results for t in part if t in ids)
    assert sorted(claims) == sorted(ids)
    assert max(claims.values()) == 1, {t: n for t, n in claims.items() if n > 1}
    assert sum(1 for part in results if part) >= 2  # they really did share the queue
    storage = QueueStorage(url)
    assert storage.count("WAITING", storage.study_ids([study])) == 0
    assert storage.count("RUNNING", storage.study_ids([study])) == len(ids)


def _reaper(url: str, study: str, start, out) -> None:
    storage = QueueStorage(url, heartbeat=1, grace=2)
    start.wait()
    out.put([t for t in storage.stale(storage.study_ids([study])) if storage.requeue(t)])


def test_a_silent_trial_is_requeued_once_however_many_workers_notice(url, request):
    study = f"stale-{request.node.callspec.id}-{time.monotonic_ns()}"
    ids = _queue(url, 6, study)
    storage = QueueStorage(url, heartbeat=1, grace=2)
    claimed = [storage.claim(storage.study_ids([study])) for _ in ids]
    assert sorted(claimed) == sorted(ids)
    assert storage.stale(storage.study_ids([study])) == []  # fresh heartbeats: nobody is silent yet
    time.sleep(3.5)  # no heartbeat for longer than the grace period: as if their worker was killed
    results = _race(_reaper, lambda i: (url, study), 3)
    requeued = Counter(t for part in results for t in part)
    assert sorted(requeued) == sorted(ids) and max(requeued.values()) == 1
    assert storage.count("WAITING", storage.study_ids([study])) == len(ids)
    # the heartbeat row went with it: claimed again, a trial is not stale at once
    again = storage.claim(storage.study_ids([study]))
    assert again in ids and again not in storage.stale(storage.study_ids([study]))


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
