"""``medtune guard RUN``: does an image belong here? A distance to the training images, kept in the run.

Two feature spaces are searched, as the out-of-distribution literature recommends: the run's own network (deep
nearest neighbours on fine-tuned features; Sun et al., ICML 2022) and a frozen generic encoder (the packaged
ImageNet EfficientNet-Lite0: fine-tuning suppresses the directions that reveal a new domain, so generic features
see what the run's features forget). In each, an image's score is the cosine distance to its k-th nearest
training image (features L2-normalised); each score is divided by the value `share` of the validation images stay
under, and an image's guard score is the larger of the two, so 1 is the threshold: at most 1 means it looks like
the training images. Calibrated so that `share` (default 95%) of the validation images pass.

>>> fit_guard("runs/pneumoniamnist-tf_efficientnet_lite0")  # doctest: +SKIP
>>> load_guard("runs/pneumoniamnist-tf_efficientnet_lite0").score(images)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medtune._io import atomic_open, write_json
from medtune.apply.scoring import load_model, predict_store
from medtune.errors import ConfigError, DataError
from medtune.models import create_model, resolve_preprocessing
from medtune.models.inference import Normalize, predict_batches
from medtune.runs import Run, prepare_dataset

#: The frozen generic encoder (packaged ImageNet weights: no hub).
GENERIC = "tf_efficientnet_lite0"
#: Neighbours: the score is the distance to the k-th nearest training image.
NEIGHBOURS = 10
#: Training images kept as references (a seeded sample above this).
MAX_REFERENCES = 5000
_SEED = 0


class PooledFeatures(nn.Module):
    """uint8 images to L2-normalised pooled features of a backbone, behind its normalisation."""

    def __init__(self, backbone: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.backbone, self.normalize = backbone, normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.backbone(self.normalize(images)).float().flatten(1), dim=1)


@dataclass
class Guard:
    """A fitted guard: per feature space the reference features and the calibrated threshold.

    Attributes:
        encoders: ``{"run": module, "generic": module}``, uint8 images to normalised features.
        references: the reference features of each encoder, ``(M, D)`` float32.
        thresholds: the k-th-neighbour distance `share` of the validation images stay under, per encoder.
        meta: what ``guard.json`` holds (share, k, images, seconds per image...).
    """

    encoders: dict[str, nn.Module]
    references: dict[str, np.ndarray]
    thresholds: dict[str, float]
    meta: dict[str, Any]

    def distances(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """The k-th nearest reference distance of each image, per encoder."""
        found = {}
        for name, encoder in self.encoders.items():
            features = predict_batches(encoder, [images])
            similarity = features @ self.references[name].T
            k = min(int(self.meta["k"]), similarity.shape[1])
            found[name] = 1.0 - np.partition(similarity, -k, axis=1)[:, -k]
        return found

    def score(self, images: torch.Tensor) -> np.ndarray:
        """Each image's guard score: the larger of its distances over their thresholds (at most 1: it passes)."""
        distances = self.distances(images)
        return np.max([distances[name] / self.thresholds[name] for name in self.encoders], axis=0)


def _encoders(trained: Any) -> dict[str, nn.Module]:
    in_chans = trained.in_chans
    generic = create_model(GENERIC, num_classes=0, in_chans=in_chans, pretrained=True).eval()
    return {
        "run": PooledFeatures(trained.cam_network.backbone, Normalize(trained.preprocessing, False)).eval(),
        "generic": PooledFeatures(generic, Normalize(resolve_preprocessing(GENERIC, in_chans), False)).eval(),
    }


def guard_folder(run: str | os.PathLike) -> Path:
    return Path(run) / "guard"


def fit_guard(run: str | os.PathLike, share: float = 0.95, k: int = NEIGHBOURS, progress: bool = True) -> Guard:
    """Fit the guard of a classification run on its training images, calibrate it on its validation images, and
    keep it in ``RUN/guard/`` (``guard.json`` and ``references.npz``).

    Raises:
        ConfigError: `share` outside (0, 1) or `k` < 1.
        DataError: an exported model or a segmentation run, or a run without training or validation images.
    """
    if not 0 < share < 1 or k < 1:
        raise ConfigError(f"share={share}, k={k}: give the share of validation images that should pass, between 0 "
                          "and 1 (e.g. 0.95), and k >= 1 neighbours")  # fmt: skip
    if Path(run).suffix.lower() == ".onnx":
        raise DataError(f"{run} is an exported model: fit the guard on its run directory, then export again")
    trained = load_model(run)
    encoders = _encoders(trained)
    train = prepare_dataset(trained.config, Run(Path(run)), split="train", progress=progress)
    val = prepare_dataset(trained.config, Run(Path(run)), split="val", progress=progress)
    if len(train.table) < k or len(val.table) < 10:
        raise DataError(f"{run}: {len(train.table)} training and {len(val.table)} validation images; the guard "
                        f"needs at least {k} and 10")  # fmt: skip
    rows = np.arange(len(train.table))
    if len(rows) > MAX_REFERENCES:
        rows = np.sort(np.random.default_rng(_SEED).choice(rows, MAX_REFERENCES, replace=False))
    references = {name: predict_store(e, train.store, rows).astype(np.float32) for name, e in encoders.items()}
    guard = Guard(encoders, references, {name: 1.0 for name in encoders}, {"k": k})
    started = time.perf_counter()
    images = torch.from_numpy(np.array(val.store.images)).permute(0, 3, 1, 2)
    distances = guard.distances(images)
    seconds = (time.perf_counter() - started) / len(val.table)
    thresholds = {name: float(max(np.quantile(d, share), 1e-6)) for name, d in distances.items()}
    # each space alone passes `share`; the larger of the two ratios passes fewer: scale both so that it passes `share`
    joint = float(np.quantile(np.max([distances[n] / thresholds[n] for n in thresholds], axis=0), share))
    guard.thresholds = {name: value * joint for name, value in thresholds.items()}
    guard.meta = {"k": k, "share": share, "references": len(rows), "validation_images": len(val.table),
                  "encoders": {"run": trained.config.backbone, "generic": GENERIC}, "thresholds": guard.thresholds,
                  "accepted_validation": float((guard.score(images) <= 1).mean()),
                  "seconds_per_image": round(seconds, 5),
                  "rule": "in distribution when max(distance / threshold) <= 1"}  # fmt: skip
    folder = guard_folder(run)
    folder.mkdir(exist_ok=True)
    with atomic_open(folder / "references.npz", "wb") as f:
        np.savez_compressed(f, **{name: r.astype(np.float16) for name, r in references.items()})
    write_json(folder / "guard.json", guard.meta)
    return guard


def load_guard(run: str | os.PathLike, trained: Any | None = None) -> Guard | None:
    """The guard kept in `run` (None when it has none, or for an exported model's path)."""
    folder = guard_folder(run)
    if not (folder / "guard.json").is_file():
        return None
    try:
        meta = json.loads((folder / "guard.json").read_text(encoding="utf-8"))
        with np.load(folder / "references.npz") as stored:
            references = {name: stored[name].astype(np.float32) for name in stored.files}
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the guard in {folder} ({exc!r}); fit it again: medtune guard {run}") from None
    encoders = _encoders(trained if trained is not None else load_model(run))
    return Guard(encoders, references, {k: float(v) for k, v in meta["thresholds"].items()}, meta)
