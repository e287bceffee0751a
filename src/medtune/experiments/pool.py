"""Several queue workers on one machine as supervised processes: ``medtune queue run --workers N``, or from Python.

>>> from medtune.experiments.pool import run_workers  # doctest: +SKIP
>>> codes = run_workers("sqlite:///runs/queue.db", workers=2)  # doctest: +SKIP

Each worker is a ``python -m medtune queue run`` process with its share of the CPU threads (and, with several GPUs,
one GPU in turn); SIGTERM to the supervisor is passed on to every worker, which requeues its experiment and exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


def visible_gpus() -> list[str]:
    """The GPUs this process may use, as CUDA_VISIBLE_DEVICES entries (none on a CPU machine)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [g.strip() for g in visible.split(",") if g.strip() and g.strip() != "-1"]
    import torch

    return [str(i) for i in range(torch.cuda.device_count())]


@dataclass
class WorkerPool:
    """`workers` worker processes on the queue at `url`, the CPU threads shared between them.

    Attributes:
        url: the queue's database (``sqlite:///...`` or ``postgresql://...``).
        workers: how many worker processes.
        studies: only these studies (all when empty).
        forever: keep waiting for new experiments.
        heartbeat: seconds between heartbeats; grace: seconds of silence before an experiment is taken back.
        processes: the started workers (after `start`).
    """

    url: str
    workers: int
    studies: Sequence[str] = ()
    forever: bool = False
    heartbeat: int = 10
    grace: int = 60
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def threads(self) -> int:
        """CPU threads each worker uses."""
        return max(1, (os.cpu_count() or 1) // self.workers)

    def command(self, index: int) -> list[str]:
        """The command line of worker `index` (0-based; named ``w1``, ``w2``...)."""
        base = [sys.executable, "-m", "medtune", "queue", "run", "--heartbeat", str(self.heartbeat)]
        base += ["--grace", str(self.grace), *(f"--study={s}" for s in self.studies)]
        return [*base, *(["--forever"] if self.forever else []), "--name", f"w{index + 1}"]

    def start(self) -> list[str]:
        """Start the workers; returns the GPUs they were placed on in turn (empty: CPU only)."""
        threads = str(self.threads)
        env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads, "MEDTUNE_STORAGE": self.url}
        gpus = visible_gpus()
        for i in range(self.workers):
            own = {**env, "CUDA_VISIBLE_DEVICES": gpus[i % len(gpus)]} if len(gpus) > 1 else env
            self.processes.append(subprocess.Popen(self.command(i), env=own))
        return gpus if len(gpus) > 1 else []

    def signal(self, signum: int) -> None:
        """Send `signum` to every worker still running."""
        for proc in self.processes:
            if proc.poll() is None:
                proc.send_signal(signum)

    def wait(self) -> list[int]:
        """Wait for every worker; their exit codes in order."""
        try:
            return [proc.wait() for proc in self.processes]
        except KeyboardInterrupt:  # the terminal sent SIGINT to the workers too; they requeue and exit
            return [proc.wait() for proc in self.processes]


def run_workers(
    url: str,
    workers: int,
    studies: Sequence[str] = (),
    forever: bool = False,
    heartbeat: int = 10,
    grace: int = 60,
    announce: Callable[[WorkerPool, list[str]], Any] | None = None,
) -> list[int]:
    """Run `workers` worker processes until the queue is empty (or, with `forever`, until SIGTERM, which is passed
    on); the workers' exit codes. `announce` is called once they have started (the command line prints them)."""
    pool = WorkerPool(url, workers, tuple(studies), forever, heartbeat, grace)
    gpus = pool.start()
    if announce is not None:
        announce(pool, gpus)
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: pool.signal(signum))
    try:
        return pool.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
