"""Claiming queued experiments: medtune's conditional UPDATE against Optuna's own ``study.ask()``.

    python benchmarks/claims.py [--trials 200] [--processes 4] [--postgres URL] [--quick]

Each row queues the same number of trials (``enqueue_trial``), then starts the worker processes together on a
barrier; each claims until the queue is empty and marks what it claimed finished. A trial claimed by two
processes would be trained twice; an *empty* trial is one that ``ask()`` creates when it finds the queue empty
(it would train with no settings). Rows: SQLite (the default storage) and, with ``--postgres`` or when
Debian's PostgreSQL is installed, a throwaway PostgreSQL server. The last column is the time per claim relative
to medtune's on the same database.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import multiprocessing as mp
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path

from _common import parse_args
from rich.console import Console
from rich.table import Table as RichTable

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def _worker(url: str, study: str, mode: str, start, out) -> None:
    import optuna

    from medtune.experiments.storage import QueueStorage

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore")
    storage = QueueStorage(url)
    handle = optuna.load_study(study_name=study, storage=url)
    study_ids = storage.study_ids([study])
    start.wait()
    claimed: list[tuple[int, bool]] = []
    began = time.perf_counter()
    while True:
        if mode == "optuna ask()":
            if handle.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)) == []:
                break
            trial = handle.ask()
            claimed.append((trial._trial_id, not trial.user_attrs))
            # "Cannot tell a COMPLETE trial": the other claimant finished it first
            with contextlib.suppress(Exception):
                handle.tell(trial, 0.0)
        else:
            trial_id = storage.claim(study_ids)
            if trial_id is None:
                break
            claimed.append((trial_id, False))
            storage.rdb.set_trial_state_values(trial_id, optuna.trial.TrialState.COMPLETE, [0.0])
    out.put((claimed, time.perf_counter() - began))


def race(url: str, mode: str, trials: int, processes: int) -> dict:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = f"bench-{mode.split()[0]}-{time.monotonic_ns()}"
    handle = optuna.create_study(study_name=study, storage=url)
    for i in range(trials):
        handle.enqueue_trial({}, user_attrs={"n": i})
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(processes + 1), ctx.Queue()  # released when every worker has loaded the study
    procs = [ctx.Process(target=_worker, args=(url, study, mode, start, out)) for _ in range(processes)]
    for proc in procs:
        proc.start()
    start.wait(timeout=600)
    results = [out.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    claims = [c for part, _ in results for c in part]
    counts = Counter(tid for tid, empty in claims if not empty)
    return {
        "claims": len(claims),
        "twice": sum(1 for n in counts.values() if n > 1),
        "empty": sum(1 for _, empty in claims if empty),
        "seconds": max(s for _, s in results),
    }


def _postgres() -> tuple[str, callable] | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        return None
    bin_dir = Path(found[-1]).parent
    folder = Path(tempfile.mkdtemp(prefix="medtune-pg-"))
    as_user = []
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = lambda *c: subprocess.run([*as_user, *map(str, c)], check=True, capture_output=True)  # noqa: E731
    run(bin_dir / "initdb", "-D", folder / "data", "-A", "trust", "-U", "postgres", "--no-sync")
    run(bin_dir / "pg_ctl", "-D", folder / "data", "-l", folder / "log", "-w", "-o",
        f"-k {folder} -c listen_addresses=127.0.0.1 -p {port} -c fsync=off", "start")  # fmt: skip
    run(bin_dir / "createdb", "-h", "127.0.0.1", "-p", port, "-U", "postgres", "bench")

    def stop() -> None:
        subprocess.run([*as_user, bin_dir / "pg_ctl", "-D", folder / "data", "-m", "immediate", "stop"],
                       capture_output=True)  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)

    return f"postgresql://postgres@127.0.0.1:{port}/bench", stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--processes", type=int, default=4)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: start a throwaway server if installed)")
    args = parse_args(parser, trials=8, processes=2)
    folder = Path(tempfile.mkdtemp(prefix="medtune-bench-queue-"))
    databases = [("SQLite", f"sqlite:///{folder / 'queue.db'}", None)]
    if args.postgres:
        databases.append(("PostgreSQL", args.postgres, None))
    elif (server := _postgres()) is not None:
        databases.append(("PostgreSQL", *server))
    table = RichTable(title=f"{args.trials} queued trials, {args.processes} processes claiming at once")
    for column in ("database", "claimed with", "claims", "trained twice", "empty trials", "ms per claim", "ratio"):
        table.add_column(column, justify="left" if column in ("database", "claimed with") else "right")
    try:
        from medtune.experiments.storage import QueueStorage

        for name, given, _ in databases:
            url = QueueStorage(given).url  # postgresql:// with the installed driver; the tables made once
            rows = {mode: race(url, mode, args.trials, args.processes) for mode in ("medtune claim", "optuna ask()")}
            base = rows["medtune claim"]["seconds"] / max(1, rows["medtune claim"]["claims"])
            for mode, row in rows.items():
                per = row["seconds"] / max(1, row["claims"])
                table.add_row(name, mode, str(row["claims"]), str(row["twice"]), str(row["empty"]),
                              f"{per * 1000:.1f}", f"{per / base:.2f}x")  # fmt: skip
    finally:
        for _, _, stop in databases:
            if stop:
                stop()
        shutil.rmtree(folder, ignore_errors=True)
    Console(width=120).print(table)


if __name__ == "__main__":
    main()
