"""Reading an image store in batches: the dataset over store rows, a seeded per-epoch batch sampler and the
DataLoader that joins them (one memory-map read per batch, channels-last, augmentation drawn per batch)."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from medtune.data.store import ImageStore
from medtune.errors import ConfigError


class StoreDataset(Dataset):
    """Rows of an `ImageStore` as ``(image, target)``: a ``(C, H, W)`` uint8 tensor and its label.

    Args:
        store: the image store.
        rows: the store rows this dataset serves, in order (e.g. one split); all rows when None.
        targets: labels indexed by store row (``Table.targets()``); when None the target is the store row itself.
        transform: applied to each image tensor.
        seed: seed of the transform's random draws in whole-batch reads: each batch draws from
            ``seed`` and its own positions, never from the global random state, so an augmented batch is the same
            whenever and in whatever process it is read (a resumed run sees the batches an uninterrupted one does).
    """

    def __init__(
        self,
        store: ImageStore,
        rows: Sequence[int] | np.ndarray | None = None,
        targets: Sequence | np.ndarray | None = None,
        transform: Callable[[torch.Tensor], Any] | None = None,
        seed: int = 0,
    ) -> None:
        self.store = store
        self.seed = seed
        self.rows = np.arange(len(store)) if rows is None else np.asarray(rows, dtype=np.int64).reshape(-1)
        if len(self.rows) and (self.rows.min() < 0 or self.rows.max() >= len(store)):
            raise IndexError(f"rows must lie in 0..{len(store) - 1}, got {self.rows.min()}..{self.rows.max()}")
        self.targets = None if targets is None else np.asarray(targets)
        if self.targets is not None and len(self.targets) != len(store):
            raise ValueError(f"targets has {len(self.targets)} entries; expected one per store row ({len(store)})")
        self.transform = transform

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int | Sequence[int] | np.ndarray) -> tuple[Any, Any]:
        """One item, or a whole batch when `i` is a sequence of positions (see `create_store_loader`).

        A batch is read from the memory map in one indexing operation and returned as a ``(B, C, H, W)`` uint8
        tensor in channels-last memory layout (no per-image copies, no transposition), with its targets.
        """
        if np.ndim(i) == 0:
            row = int(self.rows[int(i)])
            image = torch.from_numpy(np.array(self.store.images[row])).permute(2, 0, 1)
            if self.transform is not None:
                image = self.transform(image)
            return image, row if self.targets is None else self.targets[row]
        rows = self.rows[np.asarray(i, dtype=np.int64)]
        images = torch.from_numpy(self.store.images[rows]).permute(0, 3, 1, 2)
        if self.transform is not None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed * 1_000_003 + zlib.crc32(np.ascontiguousarray(i, dtype=np.int64).tobytes()))
                images = torch.stack([self.transform(image) for image in images])
        targets = torch.from_numpy(rows if self.targets is None else self.targets[rows])
        return images, targets


class FeatureDataset(Dataset):
    """Rows of a feature array (e.g. a cached float16 memory map) as float32 ``(B, D)`` batches with their targets,
    read like `StoreDataset` (whole batches by position, for `create_store_loader`).

    Args:
        features: ``(N, D)`` features, row i for store row i.
        rows: the rows this dataset serves, in order.
        targets: labels indexed by row.
    """

    def __init__(self, features: np.ndarray, rows: Sequence[int] | np.ndarray, targets: np.ndarray) -> None:
        self.rows = np.asarray(rows, dtype=np.int64).reshape(-1)
        self.features = torch.from_numpy(np.asarray(features[self.rows], dtype=np.float32))  # this split, in memory
        self.targets = torch.from_numpy(np.asarray(targets)[self.rows])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int | Sequence[int] | np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        positions = torch.from_numpy(np.asarray(i, dtype=np.int64).reshape(-1))
        return self.features[positions], self.targets[positions]


def distributed_rank() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside distributed training)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_rank(), torch.distributed.get_world_size()
    return 0, 1


class EpochBatchSampler(Sampler[list[int]]):
    """Batches of dataset positions whose order depends only on the seed and the epoch.

    Lightning calls `set_epoch` before each epoch, so a resumed run draws the same batches as one that never
    stopped, and two runs with the same seed draw the same batches.

    Under distributed training (read when iterating) each process takes its part of every batch: with ``shard=
    "batch"`` (training) process r of W takes the r-th W-th of each batch, so the processes together step on
    exactly the batches one process would (the gradients are averaged); with ``shard="rows"`` (validation) it takes
    positions r, r+W, ..., so every image is scored once, with no padding.

    Args:
        size: number of positions (the dataset length).
        batch_size: positions per batch.
        shuffle: a new random order every epoch (otherwise 0..size-1).
        drop_last: leave out a last, smaller batch.
        seed: seed of the order.
        weights: when given, each epoch draws `size` positions with replacement in proportion to these weights
            (a weighted sampler: rare classes are drawn as often as common ones).
        shard: how distributed processes share the batches: ``batch``, ``rows`` (see above) or ``none`` (every
            process reads everything: scoring after training).
    """

    def __init__(
        self,
        size: int,
        batch_size: int,
        shuffle: bool = False,
        drop_last: bool = False,
        seed: int = 0,
        weights: Sequence[float] | np.ndarray | None = None,
        shard: str = "none",
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
        if weights is not None and len(weights) != size:
            raise ValueError(f"weights has {len(weights)} entries; expected one per position ({size})")
        self.size, self.batch_size, self.shuffle, self.drop_last, self.seed = size, batch_size, shuffle, drop_last, seed
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.shard = shard
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order `__iter__` yields."""
        self.epoch = epoch

    def _order(self) -> torch.Tensor:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.size, replacement=True, generator=generator)
        if self.shuffle:
            return torch.randperm(self.size, generator=generator)
        return torch.arange(self.size)

    def _batches(self) -> Iterator[list[int]]:
        order = self._order().tolist()
        rank, world = distributed_rank()
        if self.shard == "rows" and world > 1:
            order = order[rank::world]
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if len(batch) < self.batch_size and self.drop_last:
                return
            yield batch

    def __iter__(self) -> Iterator[list[int]]:
        rank, world = distributed_rank()
        for batch in self._batches():
            if self.shard == "batch" and world > 1:
                if len(batch) < world:
                    return  # too small to give every process a part: each process must step equally often
                batch = [int(p) for p in np.array_split(np.asarray(batch), world)[rank]]
            yield batch

    def __len__(self) -> int:
        rank, world = distributed_rank()
        size = len(range(rank, self.size, world)) if self.shard == "rows" else self.size
        full, rest = divmod(size, self.batch_size)
        if self.drop_last or rest == 0:
            return full
        return full if self.shard == "batch" and rest < world else full + 1


def create_store_loader(
    dataset: StoreDataset,
    batch_size: int,
    shuffle: bool = False,
    drop_last: bool = False,
    seed: int = 0,
    weights: Sequence[float] | np.ndarray | None = None,
    shard: str = "none",
) -> DataLoader:
    """A DataLoader that reads whole batches from the store (one memory-map read per batch, channels-last).

    Args:
        dataset: the store rows to serve.
        batch_size: images per batch.
        shuffle: a new random order every epoch (seeded by `seed` and the epoch, see `EpochBatchSampler`).
        drop_last: leave out a last, smaller batch.
        seed: seed of the shuffling order.
        weights: per-position sampling weights for a weighted sampler (drawn with replacement).
        shard: how distributed processes share the batches (`EpochBatchSampler`): ``batch`` for training,
            ``rows`` for validation, ``none`` for everything else.

    >>> loader = create_store_loader(StoreDataset(store), batch_size=64, shuffle=True, seed=0)  # doctest: +SKIP
    >>> images, targets = next(iter(loader))  # (64, C, H, W) uint8, channels-last
    """
    sampler = EpochBatchSampler(len(dataset), batch_size, shuffle, drop_last, seed, weights, shard)
    # Its own generator: creating an iterator then leaves the global random state alone.
    return DataLoader(dataset, batch_size=None, sampler=sampler, generator=torch.Generator().manual_seed(seed))
