"""``medtune embed``: pooled features of every image from a run or a backbone, cached beside the image store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import console
from medtune.config import parse_overrides


def embed_command(
    source: Annotated[str, typer.Argument(help="A run directory, or a backbone name (tf_efficientnet_lite0...).")],
    data: Annotated[str, typer.Argument(help="A folder, CSV/TSV manifest or .npz.")],
    overrides: Annotated[
        list[str] | None, typer.Argument(help="key=value reading keys (label=, image_size=...).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write ids and features (float32) to this .npz file.")
    ] = None,
) -> None:
    """Compute (or read back from the cache) the pooled backbone features of every image of DATA."""
    import numpy as np

    from medtune._io import atomic_open
    from medtune.features.embed import embed

    result = embed(source, data, parse_overrides(overrides or []))
    rows, dims = result.features.shape
    console.print(f"{rows} image(s) x {dims} features from {source}; cached in {result.path}", highlight=False)
    if out is not None:
        frame = result.table.frame
        with atomic_open(out, "wb") as f:
            np.savez(f, ids=np.asarray(frame["id"], dtype=str), features=result.features.astype(np.float32),
                     labels=np.asarray(frame["label"].fillna(""), dtype=str))  # fmt: skip
        console.print(f"written: {out}", highlight=False)
