"""``medtune index`` and ``medtune similar``: the nearest images of a query by their features (FAISS).

An index holds the L2-normalised features of every image of a dataset (`medtune.features.embed`), so inner product is
cosine similarity: an exact ``IndexFlatIP`` up to `EXACT_LIMIT` vectors, an ``IndexIVFFlat`` (``4 * sqrt(N)`` lists,
16 probed) beyond, chosen by size and recorded. It is saved as ``index.faiss`` with ``index.json`` (the source, its
preprocessing and every image's id, path, label and split), in ``RUN/index/`` for a run or a folder of choice.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medtune._io import atomic_open, write_json
from medtune.errors import DataError, MissingDependencyError

INDEX_FILE = "index.faiss"
META_FILE = "index.json"
#: Up to this many vectors the index is exact (a flat inner-product scan); beyond, IVF.
EXACT_LIMIT = 1_000_000
_KEYS = ("image_size", "channels", "resize", "interpolation", "window", "backbone")


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise MissingDependencyError(
            f"search needs faiss ({exc}); install it with pip install 'medtune[search]'"
        ) from None
    return faiss


def create_index(vectors: np.ndarray, exact_limit: int = EXACT_LIMIT) -> tuple[Any, str]:
    """A FAISS inner-product index over L2-normalised `vectors`: exact up to `exact_limit` vectors, IVF beyond."""
    faiss = import_faiss()
    vectors = normalise(vectors)
    n, dims = vectors.shape
    if n <= exact_limit:
        index, kind = faiss.IndexFlatIP(dims), "flat (exact)"
    else:
        lists = int(4 * math.sqrt(n))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dims), dims, lists, faiss.METRIC_INNER_PRODUCT)
        index.train(vectors[np.random.default_rng(0).choice(n, min(n, 64 * lists), replace=False)])
        index.nprobe, kind = 16, f"ivf ({lists} lists, 16 probed)"
    index.add(vectors)
    return index, kind


def normalise(vectors: np.ndarray) -> np.ndarray:
    """float32 rows of unit length (zero rows stay zero)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class SearchIndex:
    """A saved index: the FAISS index, its images and how to embed a query like them."""

    index: Any
    images: pd.DataFrame
    meta: dict[str, Any]
    path: Path


def build_index(
    source: str | os.PathLike, data: str | os.PathLike, keys: Mapping[str, Any] | None = None,
    out: str | os.PathLike | None = None, progress: bool = True,
) -> SearchIndex:  # fmt: skip
    """Embed every image of `data` with `source` and save the index (default ``RUN/index`` for a run, else
    ``runs/index-<data>``); `keys` are the reading keys, typed (`medtune.features.embed.embed`)."""
    from medtune.features.embed import embed, load_trained_config

    embedding = embed(source, data, keys, progress=progress)
    index, kind = create_index(np.asarray(embedding.features))
    run_config = load_trained_config(str(source))
    folder = Path(out) if out else (Path(source) / "index" if run_config else Path("runs") / f"index-{Path(data).name}")
    folder.mkdir(parents=True, exist_ok=True)
    frame = embedding.table.frame
    images = pd.DataFrame({"id": frame["id"].astype(str), "path": frame["path"].astype(str),
                           "label": frame["label"], "split": frame["split"]})  # fmt: skip
    faiss = import_faiss()
    with atomic_open(folder / INDEX_FILE, "wb") as f:
        f.write(faiss.serialize_index(index).tobytes())
    meta = {"source": str(Path(source).resolve()) if run_config else str(source), "data": str(Path(data).resolve()),
            "kind": kind, "size": int(index.ntotal), "dims": int(index.d),
            "preprocessing": {key: getattr(embedding.config, key) for key in _KEYS},
            "images": images.where(images.notna(), None).to_dict("list")}  # fmt: skip
    write_json(folder / META_FILE, meta)
    return SearchIndex(index, images, meta, folder)


def load_index(path: str | os.PathLike) -> SearchIndex:
    """An index folder, or a run whose ``index/`` holds one.

    Raises:
        DataError: no index there (with the command that builds one).
    """
    import json

    folder = Path(path)
    if (folder / "index" / META_FILE).is_file():
        folder = folder / "index"
    if not (folder / META_FILE).is_file() or not (folder / INDEX_FILE).is_file():
        raise DataError(f"{path} holds no index; build one with `medtune index DATA [RUN] --out {path}`")
    faiss = import_faiss()
    meta = json.loads((folder / META_FILE).read_text(encoding="utf-8"))
    index = faiss.deserialize_index(np.frombuffer((folder / INDEX_FILE).read_bytes(), dtype=np.uint8))
    return SearchIndex(index, pd.DataFrame(meta["images"]), meta, folder)


class CaseFinder:
    """Nearest indexed images of query files, with the index's network loaded once (`similar`, and ``medtune serve``
    answering "show similar cases")."""

    def __init__(self, index: SearchIndex) -> None:
        from medtune.features.embed import FileEmbedder

        self.index = index
        self.embed = FileEmbedder(index.meta["source"], index.meta["preprocessing"])

    def find(self, queries: list[str], k: int = 8) -> pd.DataFrame:
        """The `k` nearest images of each query (cosine similarity), with their id, path, label and split; a query
        that cannot be read gets one row with its error."""
        vectors, errors = self.embed(queries)
        rows = []
        good = [i for i in range(len(queries)) if i not in errors]
        if good:
            scores, found = self.index.index.search(normalise(vectors[good]), min(k, self.index.index.ntotal))
            for q, hits, sims in zip(good, found, scores, strict=True):
                for rank, (hit, sim) in enumerate(zip(hits, sims, strict=True), start=1):
                    if hit >= 0:
                        image = self.index.images.iloc[int(hit)]
                        rows.append({"query": queries[q], "rank": rank, "similarity": round(float(sim), 6),
                                     "id": image["id"], "path": image["path"], "label": image["label"],
                                     "split": image["split"], "error": None})  # fmt: skip
        rows += [{"query": queries[i], "rank": None, "error": error} for i, error in errors.items()]
        return pd.DataFrame(rows, columns=["query", "rank", "similarity", "id", "path", "label", "split", "error"])


def similar(index: SearchIndex, queries: list[str], k: int = 8) -> pd.DataFrame:
    """The `k` nearest images of each query (cosine similarity), with their id, path, label and split."""
    return CaseFinder(index).find(queries, k)
