"""The experiment queue, sweeps, search and the leaderboard, on Optuna's RDB storage.

- `storage`: the database (SQLite file by default, PostgreSQL for workers on many machines) and the three
  operations Optuna does not make atomic on SQLite: claim, requeue and cancel.
- `queue`: adding experiments one by one, as a grid or as search slots; cancel and retry.
- `worker`: claiming and training experiments, with heartbeats, recovery and pruning.
- `leaderboard`: one row per experiment, ranked, as a table, CSV, Markdown or a spreadsheet.
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
