"""``medtune embed``: pooled features of every image from a run or a backbone, cached beside the image store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from medtune.cli._common import (
    ConfigOption,
    PrintConfigOption,
    command_keys,
    console,
    data_and_source,
    print_config,
)
from medtune.config import READING_KEYS

#: The keys the commands on frozen features read: how the data is read, and the backbone when no RUN is given.
FEATURE_KEYS = (*READING_KEYS, "backbone")


def embed_command(
    arguments: Annotated[
        list[str],
        typer.Argument(
            metavar="DATA [RUN] [KEY=VALUE]...",
            help="A folder, CSV/TSV manifest or .npz; the RUN whose network gives the features (else backbone=NAME, "
            "default tf_efficientnet_lite0); then reading keys (label=, image_size=...).",
        ),
    ],
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Also write ids and features (float32) to this .npz file.")
    ] = None,
    config_file: ConfigOption = None,
    show_config: PrintConfigOption = False,
) -> None:
    """Compute (or read back from the cache) the pooled features of every image of DATA."""
    import numpy as np

    from medtune._io import atomic_open
    from medtune.features.embed import embed

    data, source, settings = data_and_source(arguments, "medtune embed", old_order=True)
    keys = command_keys(config_file, settings, FEATURE_KEYS, "medtune embed")
    if show_config:
        print_config({"data": data, "source": source, **keys})
    result = embed(source, data, keys)
    rows, dims = result.features.shape
    console.print(f"{rows} image(s) x {dims} features from {source}; cached in {result.path}", highlight=False)
    if out is not None:
        frame = result.table.frame
        with atomic_open(out, "wb") as f:
            np.savez(f, ids=np.asarray(frame["id"], dtype=str), features=result.features.astype(np.float32),
                     labels=np.asarray(frame["label"].fillna(""), dtype=str))  # fmt: skip
        console.print(f"written: {out}", highlight=False)
