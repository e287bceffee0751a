"""Training follows the cores other processes leave: measured from /proc/stat against real busy processes, and said
once per lasting change."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from medtune.fitting.callbacks import SharedCores
from medtune.training.threads import LastingChange, choose_threads, cores_message, machine_busy_seconds

pytestmark = pytest.mark.skipif(not Path("/proc/stat").exists(), reason="the CPU use of others is read from /proc/stat")


def test_threads_follow_the_free_cores_with_hysteresis():
    assert choose_threads(others=2.0, cores=2, current=2, most=2) == 1  # another job on every core
    assert choose_threads(others=0.0, cores=2, current=1, most=2) == 2  # free again
    assert choose_threads(others=0.8, cores=2, current=1, most=2) == 1  # in between: stay
    assert choose_threads(others=0.0, cores=8, current=4, most=4) == 4  # never above where training started
    assert choose_threads(others=9.0, cores=8, current=4, most=4) == 1  # never below one


def test_a_flickering_load_is_said_once_when_it_settles():
    """What a shared machine did to the demo: another session's work started and stopped every few seconds, so the
    thread count flipped 19 times in 36 s; it is said once, when the load settles, in words that say it."""
    loads = [1.9, 0.1] * 9 + [1.9] * 8  # the other processes' cores, measured every 2 s
    current, said, lines, flips = 2, LastingChange(2, settle=10), [], 0
    for i, others in enumerate(loads):
        previous, chosen = said.said, choose_threads(others, cores=2, current=current, most=2)
        flips, current = flips + (chosen != current), chosen
        lasting = said.update(current, now=2.0 * i)
        if lasting is not None:
            lines.append(cores_message(lasting, previous, cores=2, most=2))
    assert flips == 19 and lines == ["other processes are using the CPU: training on 1 of 2 cores"]
    assert cores_message(4, previous=2, cores=8, most=4) == "the CPU is free again: training on 4 of 8 cores"
    less = cores_message(3, previous=2, cores=8, most=4)
    assert less == "other processes use less of the CPU: training on 3 of 8 cores"


def _spinners(count: int) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def test_busy_processes_make_training_give_up_a_thread_and_it_is_restored(capsys):
    start = torch.get_num_threads()
    torch.set_num_threads(2)
    callback = SharedCores(prefix="[w1] ", settle=1.0)
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
        said, err = time.monotonic() + 5, capsys.readouterr().err
        while "training on" not in err and time.monotonic() < said:  # said once it has held for a second
            time.sleep(0.3)
            callback.on_train_batch_end(None, None)
            err += capsys.readouterr().err
        assert err == "[w1] other processes are using the CPU: training on 1 of 2 cores\n"
    finally:
        for process in busy:
            process.kill()
            process.wait()
        callback.on_train_end(None, None)
        assert torch.get_num_threads() == 2  # restored when training ends
        torch.set_num_threads(start)
