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
from medtune.models.inference import Normalize
from medtune.runs import Run, prepare_dataset
from medtune.runs.exported import INPUT_NAME, META_PREFIX, ExportedModel, create_session

#: The frozen generic encoder (packaged ImageNet weights: no hub).
GENERIC = "tf_efficientnet_lite0"
#: Neighbours: the score is the distance to the k-th nearest training image.
NEIGHBOURS = 10
#: Training images kept as references (a seeded sample above this).
MAX_REFERENCES = 5000
_SEED = 0
#: Images per forward pass when scoring.
BATCH = 256
#: The output of an exported guard.
GUARD_OUTPUT = "guard_score"


class PooledFeatures(nn.Module):
    """uint8 images to L2-normalised pooled features of a backbone, behind its normalisation."""

    def __init__(self, backbone: nn.Module, normalize: Normalize) -> None:
        super().__init__()
        self.backbone, self.normalize = backbone, normalize

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.backbone(self.normalize(images)).float().flatten(1), dim=1)


class GuardNetwork(nn.Module):
    """uint8 images ``(N, C, H, W)`` to guard scores ``(N,)``: the encoders, their reference features (kept in
    half precision, as ``references.npz`` and an exported guard hold them) and thresholds, in one module, so that
    PyTorch and the exported ``<model>.guard.onnx`` compute the same thing."""

    def __init__(self, encoders: dict[str, nn.Module], references: dict[str, np.ndarray], k: int) -> None:
        super().__init__()
        self.names = tuple(encoders)
        self.encoders = nn.ModuleDict(encoders)
        for name in self.names:
            self.register_buffer(f"references_{name}", torch.from_numpy(references[name].astype(np.float16)))
        self.register_buffer("thresholds", torch.ones(len(self.names)))
        self.k = min(int(k), min(len(r) for r in references.values()))

    def distances(self, images: torch.Tensor) -> torch.Tensor:
        """The cosine distance of each image to its k-th nearest reference, per encoder: ``(E, N)``."""
        found = []
        for name in self.names:
            similarity = self.encoders[name](images) @ getattr(self, f"references_{name}").float().T
            found.append(1.0 - torch.topk(similarity, self.k, dim=1).values[:, -1])
        return torch.stack(found)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.distances(images) / self.thresholds[:, None]).amax(dim=0)


@dataclass
class Guard:
    """A fitted guard.

    Attributes:
        network: the `GuardNetwork` (encoders, references, thresholds).
        meta: what ``guard.json`` holds (share, k, thresholds, images, seconds per image...).
    """

    network: GuardNetwork
    meta: dict[str, Any]

    @property
    def thresholds(self) -> dict[str, float]:
        return dict(zip(self.network.names, self.network.thresholds.tolist(), strict=True))

    def distances(self, images: torch.Tensor) -> dict[str, np.ndarray]:
        """The k-th nearest reference distance of each image, per encoder."""
        with torch.inference_mode():
            found = torch.cat([self.network.distances(batch) for batch in images.split(BATCH)], dim=1).numpy()
        return dict(zip(self.network.names, found, strict=True))

    def score(self, images: torch.Tensor) -> np.ndarray:
        """Each image's guard score: the larger of its distances over their thresholds (at most 1: it passes)."""
        with torch.inference_mode():
            return torch.cat([self.network(batch) for batch in images.split(BATCH)]).numpy().astype(np.float64)


class ExportedGuard:
    """The guard exported beside a model (``<model>.guard.onnx``), on onnxruntime: the same scores as `Guard`."""

    def __init__(self, path: Path) -> None:
        self.session = create_session(path)
        found = self.session.get_modelmeta().custom_metadata_map
        self.meta = {k.removeprefix(META_PREFIX): json.loads(v) for k, v in found.items() if k.startswith(META_PREFIX)}

    def score(self, images: torch.Tensor) -> np.ndarray:
        array = np.ascontiguousarray(images.permute(0, 2, 3, 1).cpu().numpy(), dtype=np.uint8)
        return self.session.run([GUARD_OUTPUT], {INPUT_NAME: array})[0].astype(np.float64)


def exported_guard_file(model: Path) -> Path:
    """Where an exported model's guard lies: ``<model>.guard.onnx`` beside it."""
    return model.with_name(f"{model.stem}.guard.onnx")


def guard_of(source: str | os.PathLike, model: Any) -> Guard | ExportedGuard | None:
    """The guard that answers with `model`, loaded from `source`: an exported model's (``<model>.guard.onnx``,
    named in its metadata), else the run directory's (``RUN/guard``); None when it has none.

    Raises:
        DataError: an exported model whose guard file is missing.
    """
    if isinstance(model, ExportedModel):
        name = model.meta.get("guard")
        if name is None:
            return None
        path = model.path.parent / name
        if not path.is_file():
            raise DataError(f"{model.path} was exported with its guard {name}, which is not beside it: copy it "
                            f"there, or export the run again")  # fmt: skip
        return ExportedGuard(path)
    folder = Path(source)
    return load_guard(folder, model) if folder.is_dir() else None


def _encoders(trained: Any) -> dict[str, nn.Module]:
    in_chans = trained.in_chans
    generic = create_model(GENERIC, num_classes=0, in_chans=in_chans, pretrained=True).eval()
    return {
        "run": PooledFeatures(trained.cam_network.backbone, Normalize(trained.preprocessing, False)).eval(),
        "generic": PooledFeatures(generic, Normalize(resolve_preprocessing(GENERIC, in_chans), False)).eval(),
    }


def guard_folder(run: str | os.PathLike) -> Path:
    return Path(run) / "guard"


def store_images(store: Any, rows: np.ndarray | None = None) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` images of a prepared store (all rows, or `rows`)."""
    images = np.array(store.images if rows is None else store.images[rows])  # a copy: stores are read-only maps
    return torch.from_numpy(images).permute(0, 3, 1, 2)


def score_store(guard: Guard | ExportedGuard, store: Any, rows: np.ndarray) -> np.ndarray:
    """The guard scores of store `rows`, a batch at a time."""
    parts = [guard.score(store_images(store, rows[i : i + BATCH])) for i in range(0, len(rows), BATCH)]
    return np.concatenate(parts) if parts else np.zeros(0)


def fit_guard(run: str | os.PathLike, share: float = 0.95, k: int = NEIGHBOURS, progress: bool = True) -> Guard:
    """Fit the guard of a classification run on its training images, calibrate it on its validation images, and
    keep it in ``RUN/guard/``: ``guard.json``, ``references.npz`` and ``scores.npz`` (the scores of the validation
    and test images, which evaluate and the report compare other data with).

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
    if not trained.task.labelled:
        raise DataError(f"{run} is a {trained.task.name} run: the guard is fitted for classifiers")
    train = prepare_dataset(trained.config, Run(Path(run)), split="train", progress=progress)
    val = prepare_dataset(trained.config, Run(Path(run)), split="val", progress=progress)
    if len(train.table) < k or len(val.table) < 10:
        raise DataError(f"{run}: {len(train.table)} training and {len(val.table)} validation images; the guard "
                        f"needs at least {k} and 10")  # fmt: skip
    rows = np.arange(len(train.table))
    if len(rows) > MAX_REFERENCES:
        rows = np.sort(np.random.default_rng(_SEED).choice(rows, MAX_REFERENCES, replace=False))
    encoders = _encoders(trained)
    references = {name: predict_store(e, train.store, rows).astype(np.float32) for name, e in encoders.items()}
    guard = Guard(GuardNetwork(encoders, references, k).eval(), {})
    started = time.perf_counter()
    images = store_images(val.store)
    distances = guard.distances(images)
    seconds = (time.perf_counter() - started) / len(val.table)
    thresholds = {name: float(max(np.quantile(d, share), 1e-6)) for name, d in distances.items()}
    # each space alone passes `share`; the larger of the two ratios passes fewer: scale both so that it passes `share`
    joint = float(np.quantile(np.max([distances[n] / thresholds[n] for n in thresholds], axis=0), share))
    guard.network.thresholds.copy_(torch.tensor([thresholds[n] * joint for n in guard.network.names]))
    scores = {"val": guard.score(images), **_test_scores(guard, trained, run, progress)}
    guard.meta = {"k": guard.network.k, "share": share, "references": len(rows), "validation_images": len(val.table),
                  "encoders": {"run": trained.config.backbone, "generic": GENERIC}, "thresholds": guard.thresholds,
                  "accepted_validation": float((scores["val"] <= 1).mean()), "seconds_per_image": round(seconds, 5),
                  "rule": "in distribution when max(distance / threshold) <= 1"}  # fmt: skip
    if "test" in scores:
        guard.meta["accepted_test"] = float((scores["test"] <= 1).mean())
    _write(guard_folder(run), guard, references, scores)
    return guard


def _test_scores(guard: Guard, trained: Any, run: str | os.PathLike, progress: bool) -> dict[str, np.ndarray]:
    """The guard scores of the run's test images (none when it has no test split): what other data is compared
    with. Read for that only: nothing is chosen on them."""
    try:
        test = prepare_dataset(trained.config, Run(Path(run)), split="test", progress=progress)
    except DataError:
        return {}
    if not len(test.table):
        return {}
    ids = np.asarray(test.table.frame["id"].astype(str), dtype=str)
    return {"test": score_store(guard, test.store, np.arange(len(test.table))), "test_ids": ids}


def _write(folder: Path, guard: Guard, references: dict[str, np.ndarray], scores: dict[str, np.ndarray]) -> None:
    folder.mkdir(exist_ok=True)
    with atomic_open(folder / "references.npz", "wb") as f:
        np.savez_compressed(f, **{name: r.astype(np.float16) for name, r in references.items()})
    with atomic_open(folder / "scores.npz", "wb") as f:
        np.savez_compressed(f, **{k: v if k.endswith("_ids") else v.astype(np.float32) for k, v in scores.items()})
    write_json(folder / "guard.json", guard.meta)  # last: a guard is there once its meta is


def load_guard(run: str | os.PathLike, trained: Any | None = None) -> Guard | None:
    """The guard kept in `run` (None when it has none, or for an exported model's path)."""
    folder = guard_folder(run)
    if not (folder / "guard.json").is_file():
        return None
    try:
        meta = json.loads((folder / "guard.json").read_text(encoding="utf-8"))
        with np.load(folder / "references.npz") as stored:
            references = {name: stored[name].astype(np.float32) for name in stored.files}
        thresholds = [float(meta["thresholds"][name]) for name in references]
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read the guard in {folder} ({exc!r}); fit it again: medtune guard {run}") from None
    encoders = _encoders(trained if trained is not None else load_model(run))
    network = GuardNetwork({name: encoders[name] for name in references}, references, int(meta["k"])).eval()
    network.thresholds.copy_(torch.tensor(thresholds))
    return Guard(network, meta)


def kept_scores(run: str | os.PathLike) -> dict[str, np.ndarray]:
    """The guard scores kept at fitting time (``val``, ``test``, and ``test_ids``: the ids of the test images),
    empty when the run has no guard."""
    path = guard_folder(run) / "scores.npz"
    if not path.is_file():
        return {}
    with np.load(path) as stored:
        return {k: stored[k] if k.endswith("_ids") else stored[k].astype(np.float64) for k in stored.files}
