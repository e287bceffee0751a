"""Grad-CAM throughput: medtune's `compute_cams` against the way the grad-cam README and the notebooks use it.

    python benchmarks/explain.py [--data ../shared/data/cxr3/pneumonia] [--images 48] [--size 224] [--quick]

Every row explains the same real chest X-rays with the same network (EfficientNet-Lite0 with its packaged ImageNet
weights, one input channel, a two-class head) at the same layer (the one medtune chooses for the size: ``bn2`` at
224 px, a shallower stage where ``bn2``'s map would be under 3x3) for the same target class, and the maps agree to
float precision (the largest difference is printed). The naive way is ``pytorch_grad_cam.GradCAM`` on one
image at a time in PyTorch's default memory layout, with the weights' gradients on. medtune runs channels-last
with the weights frozen, in batches (``--batch-size`` of ``medtune explain``: 4 on the CPU by default, 16 on a
GPU); its batch-1 row separates the layout from the batching. One warm-up call per row runs first.
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path

import numpy as np
import torch
from _common import SHARED_DATA, parse_args
from rich.console import Console
from rich.table import Table as RichTable

from medtune.cams import compute_cams, find_target_layer
from medtune.data.images import prepare, read_image
from medtune.models import create_classifier, resolve_preprocessing
from medtune.models.inference import Normalize


def _images(folder: Path, count: int, size: int) -> torch.Tensor:
    paths = sorted(folder.glob("*.png"))[:count]
    if not paths:
        raise SystemExit(f"no PNG images in {folder}: put ../shared/data beside the repository or pass --data")
    arrays = [prepare(read_image(p), size, 1) for p in paths]
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2)


def naive_cams(network: torch.nn.Module, preprocessing, images: torch.Tensor, target: int, layer: str) -> np.ndarray:
    """The grad-cam README's recipe, one image at a time: a GradCAM object on the model, NCHW float input."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = torch.nn.Sequential(Normalize(preprocessing, channels_last=False), network).eval()
    maps = []
    with GradCAM(model=model, target_layers=[network.backbone.get_submodule(layer)]) as cam:
        for image in images:
            maps.append(cam(image[None].float().div(255), [ClassifierOutputTarget(target)]))
    return np.concatenate(maps)


def _timed(function, *args, **kwargs) -> tuple[float, np.ndarray]:
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return time.perf_counter() - start, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "cxr3" / "pneumonia")
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--method", default="gradcam")
    args = parse_args(parser, images=4, size=32)

    torch.manual_seed(0)
    network = create_classifier("tf_efficientnet_lite0", 2, in_chans=1).eval()
    naive_network = copy.deepcopy(network)  # compute_cams turns its network channels-last; the naive one stays NCHW
    preprocessing = resolve_preprocessing("tf_efficientnet_lite0", 1)
    images = _images(args.data, args.images, args.size)
    targets = [1] * len(images)
    layer, _ = find_target_layer(network.backbone, image_size=args.size)  # what compute_cams chooses

    rows, differences = [], []
    naive_cams(naive_network, preprocessing, images[:2], 1, layer)  # warm-up
    naive_seconds, naive_maps = _timed(naive_cams, naive_network, preprocessing, images, 1, layer)
    rows.append(("grad-cam README way: GradCAM per image, NCHW", naive_seconds))
    for batch in (1, 4, 16, 32):
        compute_cams(network, preprocessing, images[:2], targets[:2], args.method, batch_size=batch)  # warm-up
        seconds, maps = _timed(compute_cams, network, preprocessing, images, targets, args.method, batch_size=batch)
        rows.append((f"medtune compute_cams, channels-last, batch {batch}", seconds))
        differences.append(float(np.abs(maps - naive_maps).max()))

    title = f"{args.method} at {layer} on {len(images)} images of {args.data.name} at {args.size} px, 2-core CPU"
    table = RichTable(title=title)
    for column in ("way", "seconds", "images/s", "ratio"):
        table.add_column(column, justify="left" if column == "way" else "right")
    for name, seconds in rows:
        table.add_row(name, f"{seconds:.2f}", f"{len(images) / seconds:.1f}", f"{naive_seconds / seconds:.2f}x")
    console = Console(width=120)
    console.print(table)
    console.print(f"largest difference between medtune's maps and the naive ones: {max(differences):.2e}")


if __name__ == "__main__":
    main()
