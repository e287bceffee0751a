"""Studies of many runs: the experiment queue, sweeps and search on Optuna's RDB storage, the leaderboard, the
cross-domain matrix and ensembles.

- `storage`: the database (SQLite file by default, PostgreSQL for workers on many machines) and the three
  operations Optuna does not make atomic on SQLite: claim, requeue and cancel.
- `queue`: adding experiments one by one, as a grid or as search slots; cancel and retry.
- `worker`: claiming and training experiments, with heartbeats, recovery and pruning.
- `pool`: several workers as supervised processes on one machine (``medtune queue run --workers N``).
- `leaderboard`: one row per experiment, ranked, as a table, CSV, Markdown or a spreadsheet.
- `probe_runs`: probe runs recorded in the queue's database so the leaderboard ranks them.
- `crossdomain`: train on each dataset, test on every other (``medtune crossdomain``).
- `ensemble`: several trained classifiers as one run that averages their probabilities (``medtune ensemble``).
- `tune`: a search that spends a time budget (``medtune tune DATA --budget 30m``); `tune_result`: its trials made
  one run, read once on the test split.
"""

from medtune.experiments.queue import DEFAULT_STUDY, add_experiments, add_sweep, cancel, experiment_values, retry
from medtune.experiments.storage import QueueStorage, default_url

__all__ = [
    "DEFAULT_STUDY",
    "QueueStorage",
    "add_experiments",
    "add_sweep",
    "cancel",
    "default_url",
    "experiment_values",
    "retry",
]
