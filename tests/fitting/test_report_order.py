"""An epoch is reported (``history.csv``, the log line, the queue's database) only once its checkpoint is on disk:
with checkpoint writes slowed down, a run killed the moment its first epoch is reported still has that epoch's
``last.ckpt``, and resumes from it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pandas as pd
import torch

from tests.conftest import REPO, medtune, shared_path

SLOW_CHECKPOINTS = """
    import sys, time
    import medtune
    from medtune.fitting.callbacks import AtomicCheckpointIO

    write = AtomicCheckpointIO.save_checkpoint

    def slow(self, checkpoint, path, storage_options=None):
        time.sleep(2.0)  # a slow disk, a busy machine: the window in which a cancel used to lose the epoch
        write(self, checkpoint, path, storage_options)

    AtomicCheckpointIO.save_checkpoint = slow
    medtune.train(data={data!r}, limit=48, image_size=32, epochs=3, batch_size=16, workers=0, report=False, guard=False,
                  threads=1, progress=False, out={out!r})
"""


def test_a_run_killed_as_soon_as_an_epoch_is_reported_has_that_epochs_checkpoint(tmp_path):
    data = str(shared_path("pneumoniamnist", "pneumoniamnist.npz"))
    run = tmp_path / "run"
    code = SLOW_CHECKPOINTS.format(data=data, out=str(run))
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    process = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    history = run / "history.csv"
    deadline = time.monotonic() + 300
    while not (history.is_file() and len(pd.read_csv(history)) >= 1):
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, "no epoch was reported"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # the moment the first epoch is reported
    process.wait()
    reported = pd.read_csv(history)["epoch"].max()
    last = run / "checkpoints" / "last.ckpt"
    assert last.is_file(), "an epoch was reported before its checkpoint was written"
    assert torch.load(last, map_location="cpu", weights_only=True)["epoch"] + 1 >= reported  # Lightning's from 0

    resumed = medtune("train", data, "limit=48", "image_size=32", "epochs=3", "batch_size=16", "workers=0",
                      "report=false", "guard=false", "threads=1", "--out", run)  # fmt: skip
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed" in resumed.stdout
    assert pd.read_csv(history)["epoch"].tolist() == [1, 2, 3]
