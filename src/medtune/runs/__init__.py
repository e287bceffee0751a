"""Runs and the data they saw.

- `run`: the run directory (every file name a property of `Run`); `network`: your own network's recorded code.
- `resolve`: one resolution of a configuration against its data; `dataset`: the prepared dataset every command
  reads through.
- `trained`: a trained classifier or segmenter loaded without the trainer, and the checkpoint reader and writer.
- `exported`: an exported ONNX model and its metadata; `segmasks`: masks predicted by a segmentation run, cached;
  `cache`: what medtune keeps in its cache and removing it safely.

Nothing here imports Lightning.
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
