"""``medtune embed``: pooled backbone features for every image, computed once and cached beside the image store.

SOURCE is a trained run (its fine-tuned backbone, the head left off) or any backbone name (ImageNet weights: the
packaged ones for the default backbones). Images come from the image store at SOURCE's working size and
preprocessing, through the prepared dataset like every command's. The features are kept as a float16 memory map in
``<cache>/features/<key>/`` with the table's ids; the key hashes the store's key, a digest of the network's
weights (`network_identity`: the same whether a backbone name, a run or a frozen backbone in training built it)
and the preprocessing, so a changed image, network or setting computes new features and an unchanged one reads
them back without a forward pass. A cache is built in a temporary
folder and renamed into place, so an interrupted build leaves nothing behind.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medtune._io import write_json
from medtune._locks import building
from medtune._paths import cache_dir
from medtune.config import Config, load_config
from medtune.data.table import Table
from medtune.errors import ConfigError, DataError
from medtune.models.inference import Normalize, inference_device
from medtune.runs import PreparedDataset, prepare_dataset

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
        config: the configuration the images were read and prepared with.
    """

    features: np.ndarray
    table: Table
    source: str
    path: Path
    config: Config


def _network(source: str, in_chans: int | None) -> torch.nn.Module:
    """The feature network of `source`: a run's fine-tuned backbone, or a backbone with its pretrained weights."""
    path = Path(source).expanduser()
    if path.exists():
        from medtune.runs import load_trained

        return load_trained(path).model.backbone.eval()
    from medtune.models import create_classifier

    if in_chans is None:
        raise ConfigError("internal: the channels of a backbone's input are resolved from the data first")
    return create_classifier(source, 1, in_chans, pretrained=True).backbone.eval()


def network_identity(network: torch.nn.Module) -> str:
    """A digest of `network`'s weights and buffers: the same weights give the same features whoever built them (a
    backbone name, a run, or a frozen backbone in training), so all of them share one feature cache."""
    digest = hashlib.sha256()
    for name, tensor in network.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def embed(
    source: str | os.PathLike,
    data: str | os.PathLike,
    keys: Mapping[str, Any] | None = None,
    batch_size: int = _BATCH,
    progress: bool = True,
) -> Embedding:
    """Features of every image of `data` from `source` (a run directory or a backbone name), cached.

    Args:
        source: a trained run (its backbone) or a timm backbone name (its ImageNet weights).
        data: a folder, CSV/TSV manifest or .npz, read with the reading keys in `keys`.
        keys: reading keys with typed values (``{"label": "finding", "image_size": 64}``); a run's own size
            and channels win. The command line parses its ``key=value`` text into them.
        batch_size: images per forward pass.
        progress: progress bars on a terminal.

    Raises:
        ConfigError: `source` is neither a run nor a known backbone.
        DataError: the data cannot be read.

    >>> embedding = embed("tf_efficientnet_lite0", "xrays/")  # doctest: +SKIP
    >>> embedding.features.shape  # doctest: +SKIP
    (1124, 1280)
    """
    source = str(source)
    run_config = load_trained_config(source)
    values = dict(keys or {})
    keys = {**values, "data": str(data)}
    if run_config is not None:  # the run's preprocessing: its size, channels, resizing and DICOM window
        keys.update({k: getattr(run_config, k) for k in ("image_size", "channels", "resize", "interpolation",
                                                         "window", "backbone")})  # fmt: skip
    else:
        keys["backbone"] = source
    dataset = prepare_dataset(load_config(**keys), labelled=None, assign_missing=False, progress=progress)
    network = _network(source, dataset.resolved.in_chans)
    features, folder = cached_features(dataset, network, batch_size, progress, source)
    return Embedding(features, dataset.table, source, folder, dataset.config)


def cached_features(
    dataset: PreparedDataset, network: torch.nn.Module, batch_size: int = _BATCH, progress: bool = False,
    source: str = "",
) -> tuple[np.ndarray, Path]:  # fmt: skip
    """The features of every row of `dataset`'s image store from `network` (in eval mode), computed once and read
    back from the cache after: a read-only float16 memory map and its folder.

    Raises:
        DataError: the cache does not match the store (a cache folder edited by hand).
    """
    preprocessing = dataset.resolved.preprocessing
    key = [dataset.store.key, network_identity(network), preprocessing.to_dict()]
    folder = cache_dir("features") / hashlib.sha256(json.dumps(key).encode()).hexdigest()[:32]
    if not (folder / META_FILE).is_file():
        with building(folder, f"the features of {len(dataset.store)} images"):  # one process computes them
            if not (folder / META_FILE).is_file():
                if progress:
                    print(f"Computing features of {len(dataset.store)} images once (cached in {folder})",
                          file=sys.stderr)  # fmt: skip
                normalize = Normalize(preprocessing, channels_last=True)
                _build(folder, copy.deepcopy(network).eval(), normalize, dataset.store, batch_size, source)
    features = np.load(folder / FEATURES_FILE, mmap_mode="r")
    if len(features) != len(dataset.store):
        raise DataError(f"{folder} holds {len(features)} rows for {len(dataset.store)} images; delete it to rebuild")
    return features, folder


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


class FileEmbedder:
    """Features of image files prepared as `keys` say (a resolved size, channels, resizing and window), with the
    network loaded once (a server embeds every request with it).

    Args:
        source: a run directory or a backbone name.
        keys: the preprocessing keys the indexed images were prepared with.
    """

    def __init__(self, source: str, keys: dict[str, Any], batch_size: int = _BATCH) -> None:
        from medtune.runs import resolve_config

        self.resolved = resolve_config(load_config(**keys))
        self.network = _network(source, self.resolved.in_chans)
        self.normalize = Normalize(self.resolved.preprocessing, channels_last=False)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, paths: list[str]) -> tuple[np.ndarray, dict[int, str]]:
        """Features of `paths`, and the error of each file that cannot be read (its row is zeros)."""
        from medtune.data.images import read_image
        from medtune.data.masks import prepare_masked
        from medtune.errors import ImageReadError

        arrays, errors = [], {}
        for i, path in enumerate(paths):
            try:
                arrays.append(prepare_masked(read_image(path, self.resolved.config.window), None, self.resolved.spec))
            except ImageReadError as exc:
                errors[i] = exc.reason
            except (OSError, ValueError) as exc:
                errors[i] = f"{type(exc).__name__}: {exc}"
        good = [i for i in range(len(paths)) if i not in errors]
        out = np.zeros((len(paths), 1), np.float32)
        for start in range(0, len(good), self.batch_size):
            batch = torch.from_numpy(np.stack(arrays[start : start + self.batch_size])).permute(0, 3, 1, 2)
            values = self.network(self.normalize(batch)).float().numpy()
            if out.shape[1] != values.shape[1]:
                out = np.zeros((len(paths), values.shape[1]), np.float32)
            out[good[start : start + self.batch_size]] = values
        return out, errors
