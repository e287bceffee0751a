"""How many CPU threads training should use while other processes share the cores.

PyTorch's OpenMP threads spin while they wait for work (fast when the cores are free), so two jobs that each
use every core slow each other down many times over: on a 2-core machine a Lite0 training epoch beside another
busy process ran at 15 images/s with 2 threads and 86 with 1 (`benchmarks/throughput.py`); a passive wait policy
avoids the collapse but costs 37% when the cores are free, and OpenMP reads it only at start. So medtune keeps the
spinning default and uses only the cores the other processes leave: it measures, every few dozen steps, the CPU
time the whole machine spent (``/proc/stat``) less its own (``getrusage``), and sets ``torch.set_num_threads``.

The count may move back and forth while another job's load flickers; `LastingChange` says a new count only once it
has held for `SETTLE` seconds, so a log gets one line per lasting change (`cores_message` words it), not one per
flicker.
"""

from __future__ import annotations

import math
import os
import resource
import time

#: Cores of other processes' work above (below) the free share at which a thread is given up (taken back).
HYSTERESIS = 0.5
#: Shortest interval the other processes' use is measured over, in seconds.
INTERVAL = 1.0
#: Seconds a new thread count must hold before it is said (`LastingChange`).
SETTLE = 10.0


def machine_busy_seconds() -> float | None:
    """CPU seconds the machine has spent busy since boot, all cores (None where ``/proc/stat`` is absent)."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != "cpu":
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def choose_threads(others: float, cores: int, current: int, most: int) -> int:
    """Threads to use when other processes keep `others` cores busy: the cores they leave, at least 1 and at most
    `most`, changed only when the need moves by more than `HYSTERESIS` of a core.

    >>> choose_threads(others=1.9, cores=2, current=2, most=2)
    1
    >>> choose_threads(others=0.1, cores=2, current=1, most=2)
    2
    >>> choose_threads(others=0.8, cores=2, current=1, most=2)  # not clearly free yet: stay
    1
    """
    free = cores - others
    if free < current - HYSTERESIS or free > current + HYSTERESIS:
        return max(1, min(most, round(free)))
    return current


class ThreadGovernor:
    """Measures the other processes' CPU use between calls and returns the thread count to use.

    Args:
        most: the most threads to use (the count training started with).
        cores: the machine's cores (``os.cpu_count()``).
    """

    def __init__(self, most: int, cores: int | None = None) -> None:
        self.most = most
        self.cores = cores or os.cpu_count() or 1
        self.current = most
        self._last = self._sample()

    @staticmethod
    def _sample() -> tuple[float, float | None, float]:
        return time.perf_counter(), machine_busy_seconds(), own_seconds()

    def others(self) -> float | None:
        """Cores other processes kept busy since the last measurement (None without ``/proc/stat``, or until
        `INTERVAL` has passed)."""
        now = self._sample()
        (t0, busy0, own0), (t1, busy1, own1) = self._last, now
        if busy0 is None or busy1 is None or t1 - t0 < INTERVAL:
            return None
        self._last = now
        return max(0.0, ((busy1 - busy0) - (own1 - own0)) / (t1 - t0))

    def update(self) -> int | None:
        """The new thread count when it should change, else None."""
        others = self.others()
        if others is None:
            return None
        chosen = choose_threads(others, self.cores, self.current, self.most)
        if chosen == self.current:
            return None
        self.current = chosen
        return chosen


class LastingChange:
    """Says a value once it has held for `settle` seconds and differs from the value said last: a count that
    flickers between two values is said at most once, when it settles.

    Args:
        value: the value at the start (taken as said).
        settle: seconds a new value must hold.

    >>> change = LastingChange(2, settle=10)
    >>> [change.update(v, t) for v, t in [(1, 0), (2, 3), (1, 5), (1, 14), (1, 15.5)]]
    [None, None, None, None, 1]
    """

    def __init__(self, value: int, settle: float = SETTLE) -> None:
        self.said = value
        self.settle = settle
        self._value = value
        self._since = -math.inf

    def update(self, value: int, now: float) -> int | None:
        """The value to say at time `now` (seconds, any clock), or None."""
        if value != self._value:
            self._value, self._since = value, now
        if value != self.said and now - self._since >= self.settle:
            self.said = value
            return value
        return None


def cores_message(threads: int, previous: int, cores: int, most: int) -> str:
    """The line that says a lasting change of the thread count from `previous` to `threads` (`most`: the count
    training started with, on a machine of `cores` cores).

    >>> cores_message(1, previous=2, cores=2, most=2)
    'other processes are using the CPU: training on 1 of 2 cores'
    >>> cores_message(2, previous=1, cores=2, most=2)
    'the CPU is free again: training on 2 of 2 cores'
    """
    if threads < previous:
        why = "other processes are using the CPU"
    else:
        why = "the CPU is free again" if threads >= most else "other processes use less of the CPU"
    return f"{why}: training on {threads} of {cores} {'core' if cores == 1 else 'cores'}"
