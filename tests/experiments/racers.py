"""What the racing processes of tests/experiments/test_storage.py run: spawned interpreters import this module,
which imports only the queue's storage (about 0.3 s), not the test module (about 8 s with medtune's training stack:
four racers paid half a minute of CPU for it)."""

from __future__ import annotations

import multiprocessing as mp
import time

from medtune.experiments.storage import QueueStorage


def claimer(url: str, start, out) -> None:
    storage = QueueStorage(url)
    studies = storage.study_ids()
    start.wait()
    claimed = []
    while (trial_id := storage.claim(studies)) is not None:
        claimed.append(trial_id)
        time.sleep(0.005)  # a worker does something with its claim before the next one
    out.put(claimed)


class Start:
    """The starting gun: each process waits on `wait()` after reporting itself ready, so no process races before
    all have started and connected (spawning four interpreters can take seconds on a loaded 2-core machine)."""

    def __init__(self, ctx) -> None:
        self.ready, self.go = ctx.Semaphore(0), ctx.Event()

    def wait(self) -> None:
        self.ready.release()
        self.go.wait()


def race(target, args_for, processes: int) -> list[list[int]]:
    ctx = mp.get_context("spawn")
    start, out = Start(ctx), ctx.Queue()
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


def reaper(url: str, study: str, start, out) -> None:
    storage = QueueStorage(url, heartbeat=1, grace=2)
    start.wait()
    out.put([t for t in storage.stale(storage.study_ids([study])) if storage.requeue(t)])
