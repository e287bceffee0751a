"""Runs and the data they saw: the run directory (every file name a property of `Run`), one resolution of a
configuration against its data, the prepared dataset, and a trained network loaded without the trainer.

Everything here sits below the engine and the reports and above the data and the models; nothing here imports
Lightning.
"""

from medtune.runs.dataset import PreparedDataset, default_split, load_table, prepare_dataset, read_dataset_table
from medtune.runs.resolve import Resolved, check_names, network_channels, resolve_config
from medtune.runs.run import Run, open_run, prepare_run, read_history
from medtune.runs.trained import TrainedModel, load_trained

__all__ = [
    "PreparedDataset",
    "Resolved",
    "Run",
    "TrainedModel",
    "check_names",
    "default_split",
    "load_table",
    "load_trained",
    "network_channels",
    "open_run",
    "prepare_dataset",
    "prepare_run",
    "read_dataset_table",
    "read_history",
    "resolve_config",
]
