"""A chaos sweep: tiny trials run by three worker processes, one of them killed (SIGKILL) at random moments again
and again and started anew. At the end every trial finished exactly once: none failed, none left running, and no
outcome was recorded twice. Bounded for CI (12 trials); the queue's guarantees do not depend on the count."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter

from medtune.experiments.storage import QueueStorage
from tests.conftest import medtune, shared_path
from tests.experiments.conftest import FAST

TRIALS = 12


def _worker(url, tmp_path, name):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "MEDTUNE_STORAGE": url}
    log = open(tmp_path / f"{name}.log", "a")  # noqa: SIM115 - the process writes it until it ends
    return subprocess.Popen([sys.executable, "-m", "medtune", "queue", "run", "--workers", "1", "--heartbeat", "1",
                             "--grace", "3", "--name", name], cwd=tmp_path, env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def test_a_sweep_with_a_worker_killed_again_and_again_finishes_every_trial_once(sqlite_url, tmp_path):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    seeds = ",".join(str(i) for i in range(TRIALS))
    added = medtune("sweep", data, *FAST, "epochs=2", f"seed={seeds}", "--storage", sqlite_url, "--study", "chaos",
                    cwd=tmp_path)  # fmt: skip
    assert added.returncode == 0, added.stderr
    steady = [_worker(sqlite_url, tmp_path, f"steady{i}") for i in range(2)]
    victim, kills, rng = _worker(sqlite_url, tmp_path, "victim"), 0, random.Random(0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(w.poll() is None for w in steady):
        time.sleep(rng.uniform(1.5, 4.0))
        if victim.poll() is None:
            victim.send_signal(signal.SIGKILL)  # mid-epoch, mid-checkpoint or mid-claim: wherever it is
            victim.wait()
            kills += 1
        victim = _worker(sqlite_url, tmp_path, "victim")
    for worker in [*steady, victim]:
        worker.wait(timeout=600)
    logs = "\n".join(p.read_text() for p in tmp_path.glob("*.log"))
    states = Counter(trial.state.name for _, trial in QueueStorage(sqlite_url).trials())
    assert kills >= 3, f"the victim was killed {kills} times"
    assert states == Counter({"COMPLETE": TRIALS}), (states, logs[-3000:])
    finished = Counter(re.findall(r"#(\d+) finished", logs))
    assert len(finished) == TRIALS and set(finished.values()) == {1}, finished  # each outcome recorded once
