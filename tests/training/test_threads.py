"""Training follows the cores other processes leave: measured from /proc/stat against real busy processes."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medtune.fitting.callbacks import SharedCores
from medtune.training.threads import choose_threads, machine_busy_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="the CPU use of others is read from /proc/stat")


def test_threads_follow_the_free_cores_with_hysteresis():
    assert choose_threads(others=2.0, cores=2, current=2, most=2) == 1  # another job on every core
    assert choose_threads(others=0.0, cores=2, current=1, most=2) == 2  # free again
    assert choose_threads(others=0.8, cores=2, current=1, most=2) == 1  # in between: stay
    assert choose_threads(others=0.0, cores=8, current=4, most=4) == 4  # never above where training started
    assert choose_threads(others=9.0, cores=8, current=4, most=4) == 1  # never below one


def _spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_busy_processes_make_training_give_up_a_thread_and_it_is_restored():
    start = torch.get_num_threads()
    torch.set_num_threads(2)
    callback = SharedCores()
    busy = _spinners(2)  # two cores' worth of other work, whatever else the machine runs
    try:
        callback.on_train_start(None, None)
        callback._governor.cores = 2  # as on a 2-core machine, whatever this one has
        deadline = time.monotonic() + 20
        while torch.get_num_threads() == 2 and time.monotonic() < deadline:
            time.sleep(0.3)
            callback.on_train_batch_end(None, None)
        assert torch.get_num_threads() == 1
        assert machine_busy_seconds() > 0
    finally:
        for process in busy:
            process.kill()
            process.wait()
        callback.on_train_end(None, None)
        assert torch.get_num_threads() == 2  # restored when training ends
        torch.set_num_threads(start)
