"""A trained network loaded from a run: the bare `Classifier` with its classes, preprocessing and thresholds.

Loading reads the checkpoint's weights and the facts it embeds; it never imports Lightning.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from medtune._io import atomic_open
from medtune.config import Config
from medtune.errors import DataError
from medtune.models import Classifier, Preprocessing, create_classifier
from medtune.models.averaged import EnsembleClassifier
from medtune.models.custom import NetworkSource
from medtune.models.inference import ACTIVATIONS, InferenceModel, SegmenterInference
from medtune.runs.exported import ExportedModel, load_exported
from medtune.runs.network import recorded_network
from medtune.runs.resolve import Resolved, network_channels
from medtune.runs.run import Run, open_run
from medtune.tasks import Task, get_task, task_of_meta


@dataclass(frozen=True)
class TrainedModel:
    """A trained network ready for inference, with what it needs to be fed.

    Attributes:
        model: the `Classifier` in eval mode (on the CPU), or an `EnsembleClassifier` of several.
        classes: class names in output order.
        preprocessing: the backbone's normalisation.
        config: the run's configuration.
        checkpoint: the file it was loaded from.
        task: the run's task (`medtune.tasks`): single-label, or multi-label (classes are findings an image may
            have several of).
        thresholds: multi-label: the threshold of each label (``thresholds.json``), None when not chosen yet.
        network: your own network's recorded code (``backbone=file.py:NAME``); None for timm backbones.
    """

    model: Classifier | EnsembleClassifier
    classes: tuple[str, ...]
    preprocessing: Preprocessing
    config: Config
    checkpoint: Path
    task: Task = field(default_factory=lambda: get_task("classify"))
    thresholds: tuple[float, ...] | None = None
    network: NetworkSource | None = None

    @property
    def resolved(self) -> Resolved:
        """The run's resolved configuration with its preprocessing (the store spec new images are prepared in)."""
        return Resolved(self.config, self.preprocessing)

    @property
    def segmenter(self) -> Path | None:
        """An exported segmenter beside the model (only exports have one; a run names its segmentation run)."""
        return None

    @property
    def cam_network(self) -> Classifier:
        """The network class activation maps are drawn from: the classifier, or an ensemble's first member; when
        the task's outputs are not one per class (ordinal grades: CORN's thresholds), its head ends with the log
        class probabilities, so that a map's target is a class."""
        network = self.model.first if isinstance(self.model, EnsembleClassifier) else self.model
        if self.task.num_outputs(len(self.classes)) == len(self.classes):
            return network
        return Classifier(network.backbone, torch.nn.Sequential(network.head, LogProbabilities(self.task.activation)))

    @property
    def in_chans(self) -> int:
        """Input channels of the network (the image's, plus one for ``mask=channel``)."""
        return network_channels(self.config)

    def inference_model(self, tta: bool | None = None, channels_last: bool | None = None) -> InferenceModel:
        """The bare inference network: uint8 images in, probabilities out (tta and layout default to the run's)."""
        return InferenceModel(
            self.model,
            self.preprocessing,
            tta=self.config.tta if tta is None else tta,
            channels_last=self.config.channels_last if channels_last is None else channels_last,
            activation=self.task.activation,
        )


class LogProbabilities(torch.nn.Module):
    """Log class probabilities of a network's outputs under a registered activation (`ACTIVATIONS`)."""

    def __init__(self, activation: str) -> None:
        super().__init__()
        self.activation = ACTIVATIONS.get(activation)

    def forward(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.activation.log_probabilities(outputs)


def network_state(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The `Classifier` weights inside a Lightning checkpoint (the module keeps the network as ``model.``)."""
    return {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items() if k.startswith("model.")}


def load_trained(source: str | os.PathLike, which: str = "best") -> TrainedModel:
    """Load a trained model from a run directory (its `which` checkpoint) or from a ``.ckpt`` file.

    >>> trained = load_trained("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
    >>> trained.classes  # doctest: +SKIP
    ('normal', 'pneumonia')
    """
    run, path, checkpoint = _read_checkpoint(source, which, "`medtune train`")
    meta, config = _checkpoint_meta(checkpoint, path, labelled=True)
    task = task_of_meta(meta)
    members = meta.get("ensemble") or [meta]
    outputs = task.num_outputs(len(meta["classes"]))
    networks = [_classifier(Config(**m["config"]), outputs, meta["in_chans"], recorded_network(m, path))
                for m in members]  # fmt: skip
    ensemble = meta.get("ensemble")
    model = EnsembleClassifier(networks, meta["in_chans"], task.activation) if ensemble else networks[0]
    _load_weights(model, network_state(checkpoint), path)
    classes = tuple(meta["classes"])
    thresholds = run.read_thresholds(classes)
    preprocessing = Preprocessing.from_dict(meta["preprocessing"])
    source = NetworkSource.from_dict(meta["network"]) if meta.get("network") else None
    return TrainedModel(model.eval(), classes, preprocessing, config, path, task, thresholds, source)


def _classifier(config: Config, num_classes: int, in_chans: int, source: NetworkSource | None) -> Classifier:
    """An untrained network of a run's configuration, to load its weights into."""
    return create_classifier(config.backbone, num_classes, in_chans, config.head, config.dropout, pretrained=False,
                             image_size=config.image_size, source=source)  # fmt: skip


def _load_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise DataError(
            f"the weights in {path} do not fit the network built from the run's configuration ({str(exc)[:300]}); "
            "if the run trains your own network from a module, that module's code changed: restore it"
        ) from None


def _read_checkpoint(source: str | os.PathLike, which: str, command: str) -> tuple[Run, Path, dict[str, Any]]:
    """The run, the checkpoint file and its contents, from a run directory (its `which` checkpoint) or a file."""
    path = Path(source)
    if not path.exists():
        raise DataError(f"{path} does not exist; give a run directory written by {command} (runs/<name>)")
    run = Run(path.parent.parent)  # a checkpoint file lies in RUN/checkpoints/
    if path.is_dir():
        run = open_run(path)
        path = run.best_checkpoint if which == "best" and run.best_checkpoint.is_file() else run.last_checkpoint
    return run, path, read_checkpoint_file(path)


def read_checkpoint_file(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents, loaded as tensors and plain values only (``torch.load(weights_only=True)``): a file
    carrying pickled objects, which loading would construct and could run code with, is refused.

    Raises:
        DataError: the file is truncated or unreadable, or carries pickled objects (named, with the fix).
    """
    import pickle

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if "GLOBAL" in line or "Unsupported" in line]
        reason = lines[0] if lines else type(exc).__name__  # "... unsupported GLOBAL posix.system ..."
        raise DataError(
            f"checkpoint {path} carries pickled Python objects besides tensors ({reason[:200]}), which loading "
            "would build and could run code with; medtune loads only tensors and plain values. If you did not "
            "make this file, do not use it; otherwise train the run again"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise DataError(f"cannot read checkpoint {path}: {exc}; it may be truncated: train again") from None


def write_checkpoint_file(path: str | os.PathLike, checkpoint: dict[str, Any]) -> None:
    """Write a checkpoint atomically: serialised in memory, then written to a temporary file beside `path`, synced
    and renamed, so no reader ever finds it half-written; a full disk is a `medtune.errors.DiskFullError` naming
    the folder (`medtune._io.atomic_open`)."""
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    with atomic_open(path, "wb") as file:
        file.write(buffer.getbuffer())


def _checkpoint_meta(checkpoint: dict[str, Any], path: Path, labelled: bool) -> tuple[dict[str, Any], Config]:
    """The facts a checkpoint embeds and its configuration, refusing a run of the other kind (a classifier of
    labels, or a segmenter of masks) with the fix."""
    meta = checkpoint.get("medtune")
    if not isinstance(meta, dict):
        raise DataError(f"{path} is not a medtune checkpoint (no 'medtune' entry)")
    config = Config(**meta["config"])
    if task_of_meta(meta).labelled != labelled:
        run = path.parent.parent
        if labelled:
            raise DataError(
                f"{run} is a segmentation run (task=segment), not a classifier: use `medtune segment predict|evaluate "
                f"{run}`, or give it to a classifier as masks={run}"
            )
        raise DataError(
            f"{run} is a classification run, not a segmenter: give a run of `medtune segment train`, or use "
            f"`medtune predict|evaluate {run}`"
        )
    return meta, config


@dataclass(frozen=True)
class TrainedSegmenter:
    """A trained segmentation network with what it needs to be fed.

    Attributes:
        model: the smp network in eval mode (on the CPU), logits out.
        preprocessing: the encoder's normalisation.
        config: the run's configuration (``task=segment``).
        checkpoint: the file it was loaded from.
    """

    model: torch.nn.Module
    preprocessing: Preprocessing
    config: Config
    checkpoint: Path
    task: Task = field(default_factory=lambda: get_task("segment"))
    classes: tuple[str, ...] = ()
    thresholds: tuple[float, ...] | None = None

    @property
    def resolved(self) -> Resolved:
        """The run's resolved configuration with its preprocessing."""
        return Resolved(self.config, self.preprocessing)

    @property
    def in_chans(self) -> int:
        """Input channels of the network (the mask channel of its store is the target, not an input)."""
        return network_channels(self.config)

    def inference_model(self, tta: bool | None = None, channels_last: bool | None = None) -> SegmenterInference:
        """uint8 ``(B, C, H, W)`` images in, ``(B, H, W)`` mask probabilities out."""
        return SegmenterInference(
            self.model, self.preprocessing, self.config.tta if tta is None else tta,
            self.config.channels_last if channels_last is None else channels_last,
        )  # fmt: skip


def load_segmenter(source: str | os.PathLike, which: str = "best") -> TrainedSegmenter | ExportedModel:
    """Load a trained segmenter from a run of ``medtune segment train`` (its `which` checkpoint), a ``.ckpt``, or
    its ``.onnx`` export (on onnxruntime; it answers the same questions).

    Raises:
        DataError: not a run, no checkpoint, a damaged checkpoint, or a classification run.

    >>> segmenter = load_segmenter("runs/lungseg-unet-tf_efficientnet_lite0")  # doctest: +SKIP
    """
    from medtune.models.segmenters import create_segmenter

    if Path(source).suffix.lower() == ".onnx":
        exported = load_exported(source)
        if exported.task.labelled:
            raise DataError(f"{source} is an exported classifier, not a segmenter: give a segmenter's export")
        return exported

    _, path, checkpoint = _read_checkpoint(source, which, "`medtune segment train`")
    meta, config = _checkpoint_meta(checkpoint, path, labelled=False)
    model = create_segmenter(config.arch, config.backbone, meta["in_chans"], pretrained=False)
    model.load_state_dict(network_state(checkpoint))
    return TrainedSegmenter(model.eval(), Preprocessing.from_dict(meta["preprocessing"]), config, path)


def load_network(source: str | os.PathLike) -> TrainedModel | TrainedSegmenter:
    """A run's trained network, whatever its task: a classifier (`load_trained`) or a segmenter (`load_segmenter`)."""
    return load_trained(source) if source_task(source).labelled else load_segmenter(source)


def source_task(source: str | os.PathLike) -> Task:
    """The task of a run directory (its ``config.yaml``), an exported ``.onnx`` (its metadata) or a ``.ckpt`` (its
    facts), without loading a network.

    Raises:
        DataError: `source` is none of these.
    """
    import yaml

    path = Path(source)
    if path.suffix.lower() == ".onnx":
        return load_exported(path).task
    if path.is_dir():
        open_run(path)  # a folder that is not a run is refused with the fix
        values = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
        return task_of_meta(
            {"task": values.get("task"), "multilabel": bool(values.get("labels") or values.get("label_sep"))}
        )
    if path.is_file():
        meta = read_checkpoint_file(path).get("medtune")
        if isinstance(meta, dict):
            return task_of_meta(meta)
    raise DataError(f"{path} is not a run directory, a checkpoint or an exported model; give one (runs/<name>)")
