"""``medtune embed``: pooled backbone features for every image, computed once and cached beside the image store.

SOURCE is a trained run (its fine-tuned backbone, the head left off) or any backbone name (ImageNet weights: the
packaged ones for the default backbones). Images come from the image store at SOURCE's working size and
preprocessing, through the prepared dataset like every command's. The features are kept as a float16 memory map in
``<cache>/features/<key>/`` with the table's ids; the key hashes the store's key, the network (a run's checkpoint
sha256, or the backbone and its weights) and the preprocessing, so a changed image, network or setting computes
new features and an unchanged one reads them back without a forward pass. A cache is built in a temporary
folder and renamed into place, so an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune._io import file_sha256, write_json
from medtune._paths import cache_dir
from medtune.config import Config, load_config
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError
from medtune.models.inference import Normalize, inference_device
from medtune.runs import prepare_dataset

FEATURES_FILE = "features.npy"
META_FILE = "meta.json"
_BATCH = 64


@dataclass(frozen=True)
class Embedding:
    """Features of a table's images.

    Attributes:
        features: ``(N, D)`` float16 (a read-only memory map of the cache), row i for table row i.
        table: the images, in feature order.
        source: the run or backbone that computed them.
        path: the cache folder.
    """

    features: np.ndarray
    table: Table
    source: str
    path: Path
    config: Config


def _network(source: str, in_chans: int | None) -> tuple[torch.nn.Module, Config, str]:
    """The feature network of `source` (a run's backbone, or a pretrained backbone), its configuration and a text
    that names the exact weights (for the cache key)."""
    path = Path(source).expanduser()
    if path.exists():
        from medtune.runs import load_trained

        trained = load_trained(path)
        return trained.model.backbone.eval(), trained.config, f"run:{file_sha256(trained.checkpoint)}"
    from medtune.models import create_classifier
    from medtune.models.weights import packaged_weights_file, packaged_weights_for

    config = load_config(backbone=source)
    if in_chans is None:
        raise ConfigError("internal: the channels of a backbone's input are resolved from the data first")
    body = create_classifier(source, 1, in_chans, pretrained=True).backbone.eval()
    weights = f"packaged:{packaged_weights_file(source).name}" if packaged_weights_for(source) else "hub"
    return body, config, f"backbone:{source}:{weights}:{in_chans}"


def embed(
    source: str | os.PathLike,
    data: str | os.PathLike,
    overrides: list[str] | dict[str, Any] | None = None,
    batch_size: int = _BATCH,
    progress: bool = True,
) -> Embedding:
    """Features of every image of `data` from `source` (a run directory or a backbone name), cached.

    Args:
        source: a trained run (its backbone) or a timm backbone name (its ImageNet weights).
        data: a folder, CSV/TSV manifest or .npz, read with the ``key=value`` reading keys in `overrides`.
        overrides: reading keys (``label=``, ``image_size=``...); a run's own size and channels win.
        batch_size: images per forward pass.
        progress: progress bars on a terminal.

    Raises:
        ConfigError: `source` is neither a run nor a known backbone.
        DataError: the data cannot be read.

    >>> embedding = embed("tf_efficientnet_lite0", "../shared/data/cxr3")  # doctest: +SKIP
    >>> embedding.features.shape  # doctest: +SKIP
    (1124, 1280)
    """
    source = str(source)
    run_config = load_trained_config(source)
    values = overrides if isinstance(overrides, dict) else _parse(overrides)
    keys = {**values, "data": str(data)}
    if run_config is not None:  # the run's preprocessing: its size, channels, resizing and DICOM window
        keys.update({k: getattr(run_config, k) for k in ("image_size", "channels", "resize", "interpolation",
                                                         "window", "backbone")})  # fmt: skip
    else:
        keys["backbone"] = source
    dataset = prepare_dataset(load_config(**keys), labelled=None, assign_missing=False, progress=progress)
    network, _, identity = _network(source, dataset.resolved.in_chans)
    preprocessing = dataset.resolved.preprocessing
    digest = hashlib.sha256(json.dumps([dataset.store.key, identity, preprocessing.to_dict()]).encode()).hexdigest()
    folder = cache_dir("features") / digest[:32]
    if not (folder / META_FILE).is_file():
        _build(folder, network, Normalize(preprocessing, channels_last=True), dataset.store, batch_size, source)
    features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    if len(features) != len(dataset.table):
        raise DataError(f"{folder} holds {len(features)} rows for {len(dataset.table)} images; delete it to rebuild")
    return Embedding(features, dataset.table, source, folder, dataset.config)


def load_trained_config(source: str) -> Config | None:
    """The configuration of a run directory, or None when `source` is a backbone name.

    Raises:
        ConfigError: `source` is neither an existing run nor a timm backbone.
    """
    path = Path(source).expanduser()
    if path.exists():
        from medtune.runs import open_run

        return load_config(**open_run(path).read_config())
    from medtune.models.backbones import check_backbone

    check_backbone(source)
    return None


def _parse(overrides: list[str] | None) -> dict[str, Any]:
    from medtune.config import parse_overrides

    return parse_overrides(overrides or [])


@torch.inference_mode()
def _build(folder: Path, network: torch.nn.Module, normalize: Normalize, store: Any, batch: int, source: str) -> None:
    """Compute the features of every store row into a temporary folder, then rename it into place."""
    device = inference_device()
    network = network.to(device).to(memory_format=torch.channels_last)
    normalize = normalize.to(device)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=folder.parent))
    try:
        out = None
        for start in range(0, len(store), batch):
            images = torch.from_numpy(np.array(store.images[start : start + batch])).permute(0, 3, 1, 2)
            values = network(normalize(images.to(device))).float().cpu().numpy()
            if out is None:
                shape = (len(store), values.shape[1])
                out = np.lib.format.open_memmap(tmp / FEATURES_FILE, mode="w+", dtype=np.float16, shape=shape)
            out[start : start + len(values)] = values
        if out is None:
            raise DataError("no images to embed")
        out.flush()
        del out
        write_json(tmp / META_FILE, {"source": source, "rows": len(store), "ids": list(store.ids)})
        try:
            os.replace(tmp, folder)
        except OSError:
            if not (folder / META_FILE).is_file():
                raise
            shutil.rmtree(tmp, ignore_errors=True)  # another process finished first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@torch.inference_mode()
def embed_files(
    source: str, paths: list[str], keys: dict[str, Any], batch_size: int = _BATCH
) -> tuple[np.ndarray, dict[int, str]]:
    """Features of image files prepared as `keys` say (a resolved size, channels, resizing and window), with the
    error of each file that cannot be read; its row is zeros."""
    from medtune.data.images import read_image
    from medtune.data.masks import prepare_masked
    from medtune.errors import ImageReadError
    from medtune.runs import resolve_config

    resolved = resolve_config(load_config(**keys))
    network, _, _ = _network(source, resolved.in_chans)
    normalize = Normalize(resolved.preprocessing, channels_last=False)
    arrays, errors = [], {}
    for i, path in enumerate(paths):
        try:
            arrays.append(prepare_masked(read_image(path, resolved.config.window), None, resolved.spec))
        except ImageReadError as exc:
            errors[i] = exc.reason
        except (OSError, ValueError) as exc:
            errors[i] = f"{type(exc).__name__}: {exc}"
    good = [i for i in range(len(paths)) if i not in errors]
    out = np.zeros((len(paths), 1), np.float32)
    for start in range(0, len(good), batch_size):
        batch = torch.from_numpy(np.stack(arrays[start : start + batch_size])).permute(0, 3, 1, 2)
        values = network(normalize(batch)).float().numpy()
        if out.shape[1] != values.shape[1]:
            out = np.zeros((len(paths), values.shape[1]), np.float32)
        out[good[start : start + batch_size]] = values
    return out, errors
