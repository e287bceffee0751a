"""``medtune ensemble RUN RUN... --out DIR``: several trained classifiers as one run that averages their
probabilities.

The ensemble directory is a run directory like any other: ``config.yaml`` and ``split.csv`` (the members'),
``checkpoints/best.ckpt`` holding every member's kept weights as one `EnsembleClassifier`, ``ensemble.json``
naming the members (their runs and the hashes of their checkpoints), and ``metrics.json`` and
``predictions.csv`` of the test split. So ``medtune evaluate``, ``predict``, ``explain`` (the first member's
maps), ``report``, ``export`` and ``serve`` take it as they take one run.

Members must see the same images (classes, channels, working size, resizing; another backbone's normalisation is
mapped inside the network), and none may have trained or chosen its epoch on an image of the ensemble's test split
(the first member's). Runs of data without given splits are split by their seed, so train the other members with
``split_file=FIRST_RUN/split.csv``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from medtune._io import file_sha256, write_json
from medtune.apply.evaluate import evaluate_split
from medtune.config import Config
from medtune.errors import ConfigError, DataError
from medtune.models.averaged import EnsembleClassifier
from medtune.runs import Run, prepare_dataset
from medtune.runs.network import write_network
from medtune.runs.run import open_run
from medtune.runs.trained import TrainedModel, load_trained, read_checkpoint_file, write_checkpoint_file

#: Keys whose values decide what a network sees: members of one ensemble must agree on all of them.
INPUT_KEYS = ("data", "image_size", "channels", "resize", "interpolation", "mask", "mask_margin", "window", "frame")


@dataclass(frozen=True)
class EnsembleResult:
    """What `create_ensemble` made: the ensemble's run directory, its test metrics and its members' runs."""

    run: Run
    metrics: dict[str, Any]
    members: tuple[Run, ...]


def create_ensemble(runs: list[str | os.PathLike], out: str | os.PathLike) -> EnsembleResult:
    """Combine finished classifier runs into one ensemble run in `out` and evaluate it on their test split.

    Raises:
        ConfigError: fewer than two runs, the same run twice, or an `out` that is not empty.
        DataError: a run that is not a finished single-label classifier, or members that differ in classes,
            input or split (named, with the fix).
    """
    members = _members(runs)
    trained = [load_trained(member.path) for member in members]
    _check_compatible(members, trained)
    target = Run(Path(out))
    if target.path.exists() and any(target.path.iterdir()):
        raise ConfigError(f"--out {target.path} is not empty; give a new folder for the ensemble")
    target.checkpoints.mkdir(parents=True, exist_ok=True)
    config = trained[0].config
    target.write_config(config)
    write_network(target.network_dir, trained[0].network)  # the data is prepared as the first member's was
    shutil.copyfile(members[0].split_file, target.split_file)
    network = EnsembleClassifier([t.model for t in trained], trained[0].in_chans, trained[0].task.activation).eval()
    network.renormalise([t.preprocessing.mean for t in trained], [t.preprocessing.std for t in trained])
    described = [_describe(member, t) for member, t in zip(members, trained, strict=True)]
    checkpoint = read_checkpoint_file(trained[0].checkpoint)
    meta = {**checkpoint["medtune"], "ensemble": described}
    state = {f"model.{k}": v for k, v in network.state_dict().items()}
    write_checkpoint_file(target.best_checkpoint, {"state_dict": state, "medtune": meta})
    write_json(target.path / "ensemble.json", {"members": described, "combine": "mean of class probabilities"})
    dataset = prepare_dataset(config, target, progress=False)
    metrics = evaluate_split(network, dataset, target.path)
    return EnsembleResult(target, metrics, tuple(members))


def _members(runs: list[str | os.PathLike]) -> list[Run]:
    if len(runs) < 2:
        raise ConfigError(f"an ensemble needs two runs or more, got {len(runs)}; e.g. medtune ensemble RUN1 RUN2")
    members = [open_run(path) for path in runs]
    seen = [member.path.resolve() for member in members]
    if len(set(seen)) < len(seen):
        raise ConfigError("the same run is named twice; an ensemble's members must be different runs")
    for member in members:
        if not member.finished:
            raise DataError(f"{member.path} has not finished training (no metrics.json); run its `medtune train` "
                            f"command again to finish it")  # fmt: skip
    return members


def _check_compatible(members: list[Run], trained: list[TrainedModel]) -> None:
    """Refuse members that differ in task, classes, input or split, naming the run and the difference."""
    first, reference = members[0], trained[0]
    for member, model in zip(members, trained, strict=True):
        if model.task.ensembles:
            raise DataError(f"{member.path} is a {model.task.name} run, which cannot be ensembled yet: "
                            f"{model.task.ensembles}")  # fmt: skip
    if any(isinstance(t.model, EnsembleClassifier) for t in trained):
        raise DataError("an ensemble cannot be a member; list the runs it was made of instead")
    split = pd.read_csv(first.split_file)
    test = split.loc[split["split"] == "test", "id"].astype(str)
    for member, other in zip(members[1:], trained[1:], strict=True):
        if other.classes != reference.classes:
            raise DataError(f"{member.path} has classes {list(other.classes)}, {first.path} has "
                            f"{list(reference.classes)}: ensemble runs of the same classes")  # fmt: skip
        differing = [key for key in INPUT_KEYS if getattr(other.config, key) != getattr(reference.config, key)]
        if differing:
            values = ", ".join(f"{key}: {_value(other.config, key)} vs {_value(reference.config, key)}"
                               for key in differing)  # fmt: skip
            raise DataError(f"{member.path} sees other input than {first.path} ({values}); members must share "
                            f"data, working size, channels and resizing")  # fmt: skip
        own = pd.read_csv(member.split_file)
        leaked = sorted(set(test) & set(own.loc[own["split"].isin(["train", "val"]), "id"].astype(str)))
        if leaked:
            raise DataError(
                f"{member.path} trained or chose its epoch on {len(leaked)} image(s) of the test split of {first.path} "
                f"(e.g. {leaked[0]}), so the ensemble's test scores would be optimistic; train the members with "
                f"split_file={first.split_file}"
            )


def _value(config: Config, key: str) -> str:
    return str(getattr(config, key, key))


def _describe(member: Run, trained: TrainedModel) -> dict[str, Any]:
    """What ``ensemble.json`` and the checkpoint record of a member: its run, weights and network."""
    return {"run": str(member.path.resolve()), "checkpoint_sha256": file_sha256(trained.checkpoint),
            "kept_epoch": member.kept_epoch, "config": trained.config.model_dump(mode="json"),
            "network": trained.network.to_dict() if trained.network else None}  # fmt: skip
