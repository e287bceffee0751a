"""medtune.experiments.pool from Python: worker processes on a real SQLite queue, started and awaited without the
command line."""

from __future__ import annotations

from medtune.experiments.pool import WorkerPool, run_workers
from medtune.experiments.storage import QueueStorage


def test_the_pool_shares_the_cores_and_names_its_workers():
    pool = WorkerPool("sqlite:///q.db", workers=2, studies=("a",), forever=True, heartbeat=5, grace=20)
    command = pool.command(1)
    assert command[-2:] == ["--name", "w2"] and "--forever" in command and "--study=a" in command
    assert command[command.index("--grace") + 1] == "20" and pool.threads >= 1


def test_workers_on_an_empty_queue_start_and_finish(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'queue.db'}"
    QueueStorage(url)  # the tables exist before the workers start, as `medtune queue run` makes them
    started = []
    codes = run_workers(url, workers=2, announce=lambda pool, gpus: started.extend(p.pid for p in pool.processes))
    assert codes == [0, 0] and len(started) == 2
