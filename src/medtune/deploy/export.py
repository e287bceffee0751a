"""``medtune export``: a trained run as one ONNX file that predicts on onnxruntime, checked against PyTorch.

The graph takes uint8 images ``(N, size, size, channels)`` (NHWC, as the image store holds them; the batch axis is
dynamic) and returns what the run's task answers: class probabilities (a segmenter: mask probabilities ``(N, size,
size)``); the layout change, the backbone's normalisation and the task's activation are inside it. A classifier
trained with ``masks=SEG_RUN`` takes its segmenter along: ``<model>.segmenter.onnx`` beside it, parity checked the
same way and named in the classifier's metadata. It is written at opset 20 by PyTorch's TorchScript exporter (as
timm's ``onnx_export`` does by default: a whole export in about a quarter of the torch.export-based exporter's
time on an EfficientNet, the same answers to within 1e-5), or by the torch.export-based ("dynamo") exporter when asked
(``exporter="dynamo"``) or when the TorchScript one fails or is gone from the installed PyTorch. Its
``metadata_props`` hold the task, classes, working size, channels, resizing, mean and std, multi-label thresholds,
the resolved configuration, the medtune version and the SHA-256 of the checkpoint it came from. At export the model
must pass ``onnx.checker`` and agree with the PyTorch network on the run's test images (largest probability
difference at most `PARITY_TOLERANCE`); the numbers are kept in ``<model>.parity.json`` beside it. A classifier with
a guard (`medtune.apply.guard`) takes it along as ``<model>.guard.onnx`` (images in, guard scores out, the reference
features inside), named in the model's metadata and checked against PyTorch the same way.
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medtune._io import atomic_open, file_sha256, write_json
from medtune._version import __version__
from medtune.apply.guard import GUARD_OUTPUT, ExportedGuard, Guard, exported_guard_file, load_guard
from medtune.errors import ConfigError, DataError, MedtuneError, MissingDependencyError
from medtune.models.inference import InferenceModel, predict_batches
from medtune.runs import Run, TrainedModel, prepare_dataset
from medtune.runs.exported import INPUT_NAME, OUTPUT_NAME, create_session, onnx_metadata, parity_file
from medtune.runs.segmasks import segmenter_of
from medtune.runs.trained import TrainedSegmenter, load_network

logger = logging.getLogger(__name__)

#: Export formats.
FORMATS = ("onnx",)
#: PyTorch's ONNX exporters: TorchScript tracing (the default) and torch.export ("dynamo").
EXPORTERS = ("torchscript", "dynamo")
#: The opset of every export (the TorchScript exporter's highest; the dynamo exporter's default in torch 2.14).
OPSET = 20
#: Quantisations of an export (None: fp32 only).
QUANTIZATIONS = ("int8",)
#: Largest absolute probability difference between the ONNX model and PyTorch that an fp32 export may have.
PARITY_TOLERANCE = 1e-4
#: Largest guard score difference between the exported guard and PyTorch (scores are near 1 at the threshold).
GUARD_TOLERANCE = 1e-3
#: Test images the parity check runs on (at most).
PARITY_IMAGES = 256


class ExportError(MedtuneError, RuntimeError):
    """The exported model does not agree with the network it came from."""


@dataclass(frozen=True)
class Export:
    """What `export` wrote.

    Attributes:
        model: the ``.onnx`` file.
        parity: the parity check (``<model>.parity.json``): images, largest difference, share of equal top classes;
            with a quantisation also its file and the test AUC and accuracy of both models.
    """

    model: Path
    parity: dict[str, Any]


class StoreLayoutModel(nn.Module):
    """uint8 NHWC images (as the store holds them) to probabilities: the inference network behind a transpose."""

    def __init__(self, model: InferenceModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images.permute(0, 3, 1, 2))


def export(
    run: str | os.PathLike,
    out: str | os.PathLike | None = None,
    fmt: str = "onnx",
    progress: bool = False,
    quantize: str | None = None,
    force: bool = False,
    exporter: str = "torchscript",
) -> Export:
    """Export a run's best network to ONNX (``RUN/export/model.onnx`` by default) and check it.

    Args:
        run: a run directory written by ``medtune train`` or ``medtune segment train``.
        out: the ``.onnx`` file to write (atomically).
        fmt: ``onnx``.
        progress: a progress bar while the test images' store is opened.
        quantize: ``int8``: also write ``<model>.int8.onnx`` (`medtune.deploy.quantize`), refused when its test
            AUC drops by more than 0.01.
        force: keep an int8 model even when it loses more than that.
        exporter: ``torchscript`` (PyTorch's tracing exporter; the dynamo one where it fails) or ``dynamo``.

    Raises:
        ConfigError: an unknown format.
        ExportError: the model fails ``onnx.checker`` or differs from PyTorch by more than `PARITY_TOLERANCE`
            (nothing is left at `out`).

    >>> export("runs/pneumoniamnist-tf_efficientnet_lite0").parity["max_abs_diff"]  # doctest: +SKIP
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; expected one of {', '.join(FORMATS)}")
    if quantize is not None and quantize not in QUANTIZATIONS:
        raise ConfigError(f"unknown quantisation {quantize!r}; expected one of {', '.join(QUANTIZATIONS)}")
    if exporter not in EXPORTERS:
        raise ConfigError(f"unknown exporter {exporter!r}; expected one of {', '.join(EXPORTERS)}")
    onnx = _import_onnx()
    trained = load_network(run)
    folder = Run(Path(run))
    target = Path(out) if out else folder.export_file
    graph = _to_onnx(trained, exporter)
    onnx.checker.check_model(graph, full_check=True)
    values = _metadata(trained, graph)
    guard = load_guard(run, trained) if isinstance(trained, TrainedModel) else None
    values["guard"] = None if guard is None else exported_guard_file(target).name
    segmenter = segmenter_of(trained) if trained.config.mask != "none" else None
    if segmenter is not None:  # trained with masks=SEG_RUN: the segmenter goes along, so no run is needed
        beside = export(segmenter, target.with_name(f"{target.stem}.segmenter.onnx"), progress=progress,
                        exporter=exporter)  # fmt: skip
        values.update(segmenter=beside.model.name, segmenter_sha256=file_sha256(beside.model))
    for key, value in onnx_metadata(values).items():
        graph.metadata_props.add(key=key, value=value)
    with atomic_open(target, "wb") as f:
        f.write(graph.SerializeToString())
    try:
        parity = check_parity(target, trained, folder, progress)
        exported_guard_file(target).unlink(missing_ok=True)  # a guard exported before, when the run had one
        if guard is not None:  # the run's guard beside it, so the .onnx flags the images predict flags
            parity["guard"] = export_guard(guard, exported_guard_file(target), trained, folder, progress, exporter)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    parity.update(opset=values["opset"], exporter=values["exporter"], checkpoint_sha256=values["checkpoint_sha256"])
    if quantize == "int8":
        from medtune.deploy.quantize import quantize_int8

        parity["int8"] = quantize_int8(target, trained, folder, force)
    write_json(parity_file(target), parity)
    return Export(target, parity)


def _import_onnx() -> Any:
    try:
        import onnx
    except ImportError:
        raise MissingDependencyError("ONNX export needs onnx and onnxscript: pip install onnx onnxscript") from None
    return onnx


def _to_onnx(trained: TrainedModel | TrainedSegmenter, exporter: str) -> Any:
    """The ONNX graph of the run's network in the store's layout, with a dynamic batch axis."""
    model = trained.inference_model(tta=False, channels_last=False)
    return export_graph(model, int(trained.config.image_size), trained.in_chans, exporter=exporter)


def export_graph(
    model: nn.Module, size: int, in_chans: int, output: str = OUTPUT_NAME, exporter: str = "torchscript"
) -> Any:
    """An ``onnx.ModelProto`` of `model` (uint8 NHWC ``(batch, size, size, in_chans)`` in, probabilities out,
    named `output`) at opset `OPSET` with a dynamic batch axis, written by PyTorch's TorchScript exporter (the
    dynamo exporter where that one raises) or by the dynamo exporter; the exporter used is in the graph's
    ``doc_string``.

    >>> graph = export_graph(InferenceModel(network, preprocessing, channels_last=False), 64, 1)  # doctest: +SKIP
    """
    wrapped = StoreLayoutModel(model).eval()
    example = torch.randint(0, 256, (2, size, size, in_chans), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        path = str(Path(tmp) / "model.onnx")
        if exporter == "torchscript":
            try:
                traced = static_padding(copy.deepcopy(wrapped), example)
                torch.onnx.export(
                    traced, (example,), path, dynamo=False, opset_version=OPSET, input_names=[INPUT_NAME],
                    output_names=[output], dynamic_axes={INPUT_NAME: {0: "batch"}, output: {0: "batch"}},
                )  # fmt: skip
            except Exception as error:  # an op it cannot trace, or a PyTorch without it: torch.export's exporter
                logger.warning("the TorchScript ONNX exporter failed (%s); using the dynamo exporter", error)
                exporter = "dynamo"
        if exporter == "dynamo":
            program = torch.onnx.export(
                wrapped, (example,), dynamo=True, verbose=False, opset_version=OPSET, input_names=[INPUT_NAME],
                output_names=[output], dynamic_shapes={"images": {0: torch.export.Dim("batch")}},
            )  # fmt: skip
            program.save(path)
        graph = _import_onnx().load(path)
    graph.doc_string = f"exporter: {exporter}"
    return graph


def static_padding(model: nn.Module, example: torch.Tensor) -> nn.Module:
    """`model` with the "same" padding of its TF-ported layers (timm's ``Conv2dSame``, ``MaxPool2dSame``: computed
    from the input's size at every call) fixed for the size of `example`, so a traced graph holds constant pads:
    onnxruntime's int8 quantiser mishandles the shape arithmetic of dynamic ones. `model` is changed in place."""
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import pad_same_arg
    from timm.layers.pool2d_same import MaxPool2dSame

    sizes: dict[str, tuple[int, int]] = {}
    layers = {name: m for name, m in model.named_modules() if isinstance(m, Conv2dSame | MaxPool2dSame)}

    def record(name: str) -> Any:
        def hook(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:  # returns None: the input is kept
            sizes.setdefault(name, tuple(args[0].shape[-2:]))

        return hook

    hooks = [m.register_forward_pre_hook(record(name)) for name, m in layers.items()]
    with torch.no_grad():
        model(example)
    for hook in hooks:
        hook.remove()
    for name, size in sizes.items():
        layer = layers[name]
        pad = pad_same_arg(list(size), list(layer.kernel_size), list(layer.stride), list(layer.dilation))
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, StaticSamePadding(layer, [int(p) for p in pad]))
    return model


class StaticSamePadding(nn.Module):
    """A timm ``Conv2dSame`` / ``MaxPool2dSame`` with its padding fixed (`static_padding`)."""

    def __init__(self, layer: nn.Module, pad: list[int]) -> None:
        super().__init__()
        self.layer, self.pad = layer, pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        layer = self.layer
        if isinstance(layer, nn.Conv2d):
            x = F.pad(x, self.pad)
            return F.conv2d(x, layer.weight, layer.bias, layer.stride, 0, layer.dilation, layer.groups)
        x = F.pad(x, self.pad, value=-float("inf"))
        return F.max_pool2d(x, layer.kernel_size, layer.stride, 0, layer.dilation, layer.ceil_mode)


def _metadata(trained: TrainedModel | TrainedSegmenter, graph: Any) -> dict[str, Any]:
    config = trained.config
    graph_opset = next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx"))
    return {
        "version": __version__,
        "classes": list(trained.classes),
        "task": trained.task.name,
        "multilabel": trained.task.labelled and not trained.task.single_label,
        "thresholds": None if trained.thresholds is None else list(trained.thresholds),
        "image_size": int(config.image_size),
        "channels": int(config.channels),
        "in_chans": trained.in_chans,
        "input": "uint8 NHWC (N, image_size, image_size, in_chans), resized as the image store resizes",
        "output": trained.task.output,
        "resize": config.resize,
        "interpolation": config.interpolation,
        "mean": list(trained.preprocessing.mean),
        "std": list(trained.preprocessing.std),
        "preprocessing": trained.preprocessing.to_dict(),
        "config": config.model_dump(mode="json"),
        "checkpoint": trained.checkpoint.name,
        "checkpoint_sha256": file_sha256(trained.checkpoint),
        "opset": int(graph_opset),
        "exporter": graph.doc_string.removeprefix("exporter: "),
    }


def check_parity(
    model: Path, trained: TrainedModel | TrainedSegmenter, run: Run, progress: bool = False
) -> dict[str, Any]:
    """Compare the ONNX model with the PyTorch network on up to `PARITY_IMAGES` of the run's test images (its
    validation images when it has no test split).

    Raises:
        ExportError: the largest probability difference exceeds `PARITY_TOLERANCE`.
    """
    images, split = _test_images(trained, run, progress)
    session = create_session(model)
    onnx_probs = session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
    torch_model = trained.inference_model(tta=False)
    torch_probs = predict_batches(torch_model, [torch.from_numpy(images).permute(0, 3, 1, 2)], torch.device("cpu"))
    diff = float(np.abs(onnx_probs - torch_probs).max())
    agree = trained.task.agreement(onnx_probs, torch_probs)
    parity = {"split": split, "images": len(images), "max_abs_diff": diff, "agreement": agree,
              "agreement_of": trained.task.agreement_of, "predict": trained.task.predict_hint.format(model=model),
              "tolerance": PARITY_TOLERANCE}  # fmt: skip
    if not diff <= PARITY_TOLERANCE:
        raise ExportError(
            f"the ONNX model differs from PyTorch by {diff:.2e} in probability on {len(images)} {split} images "
            f"(at most {PARITY_TOLERANCE:g} allowed; {trained.task.agreement_of} on {agree:.1%}); nothing was "
            "kept. Report the backbone and the torch and onnxruntime versions"
        )
    return parity


def export_guard(
    guard: Guard, out: Path, trained: TrainedModel, run: Run, progress: bool = False, exporter: str = "torchscript"
) -> dict[str, Any]:
    """Export a run's guard (`medtune.apply.guard.GuardNetwork`: encoders, reference features, thresholds) to
    `out`: uint8 NHWC images in, ``guard_score`` out; checked against PyTorch on the run's test images.

    Raises:
        ExportError: scores differ by more than `GUARD_TOLERANCE`, or an image is flagged by one and not the other
            away from the threshold (nothing is left at `out`).
    """
    graph = export_graph(guard.network, int(trained.config.image_size), trained.in_chans, GUARD_OUTPUT, exporter)
    for key, value in onnx_metadata({**guard.meta, "version": __version__}).items():
        graph.metadata_props.add(key=key, value=value)
    with atomic_open(out, "wb") as f:
        f.write(graph.SerializeToString())
    images, split = _test_images(trained, run, progress)
    ours = ExportedGuard(out).score(torch.from_numpy(images).permute(0, 3, 1, 2))
    theirs = guard.score(torch.from_numpy(images).permute(0, 3, 1, 2))
    diff = float(np.abs(ours - theirs).max())
    near = np.abs(theirs - 1.0) <= GUARD_TOLERANCE  # a score at the threshold may fall either side
    same = float(((ours <= 1) == (theirs <= 1))[~near].mean()) if (~near).any() else 1.0
    if not diff <= GUARD_TOLERANCE or same < 1.0:
        out.unlink(missing_ok=True)
        raise ExportError(
            f"the exported guard differs from PyTorch by {diff:.2e} in score on {len(images)} {split} "
            f"images (at most {GUARD_TOLERANCE:g}), the same verdict on {same:.1%}; nothing was kept"
        )
    return {"model": out.name, "images": len(images), "max_abs_diff": diff, "same_verdict": same,
            "tolerance": GUARD_TOLERANCE, "sha256": file_sha256(out)}  # fmt: skip


def _test_images(trained: TrainedModel | TrainedSegmenter, run: Run, progress: bool) -> tuple[np.ndarray, str]:
    split = "test"
    try:
        dataset = prepare_dataset(trained.config, run, split=split, progress=progress)
    except DataError:
        split = "val"
        dataset = prepare_dataset(trained.config, run, split=split, progress=progress)
    rows = np.arange(min(len(dataset.table), PARITY_IMAGES))
    # a segmenter's store holds the mask as its last channel: the network's inputs are the channels before it
    return np.ascontiguousarray(dataset.store.images[rows][..., : trained.in_chans]), split
