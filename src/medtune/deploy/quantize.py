"""``medtune export --quantize int8``: onnxruntime static quantisation of an exported model, judged on the test split.

The fp32 model is pre-processed (shape inference and graph optimisation, onnxruntime's ``quant_pre_process``) and
quantised in the QDQ format, per channel (int8 weights, uint8 activations), with activation ranges calibrated on
up to `CALIBRATION_IMAGES` training images read from the run's image store. Both models are then scored on the
test split; an int8 model that loses more than `MAX_AUC_DROP` of macro ROC AUC is refused unless forced.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from medtune.errors import MedtuneError, MissingDependencyError
from medtune.runs import PreparedDataset, Run, TrainedModel, prepare_dataset
from medtune.runs.exported import INPUT_NAME, OUTPUT_NAME, create_session
from medtune.tasks import Task

#: Training images the activation ranges are calibrated on (at most).
CALIBRATION_IMAGES = 256
#: Largest loss of test macro ROC AUC an int8 model may have without ``--force``.
MAX_AUC_DROP = 0.01


class QuantizationError(MedtuneError, RuntimeError):
    """The quantised model loses too much on the test split."""


def int8_file(model: Path) -> Path:
    """``model.int8.onnx`` beside ``model.onnx``."""
    return model.with_name(f"{model.stem}.int8.onnx")


def quantize_int8(model: Path, trained: TrainedModel, run: Run, force: bool = False) -> dict[str, Any]:
    """Write the int8 model of `model` beside it and compare both on the run's test split.

    Returns:
        ``{"int8": path, "fp32": {"auc", "accuracy"}, "int8": {...}, "images": n, "auc_drop": d}``.

    Raises:
        QuantizationError: the int8 model's test AUC is more than `MAX_AUC_DROP` below the fp32 model's (the int8
            file is removed), unless `force`.
    """
    train = prepare_dataset(trained.config, run, split="train", progress=False)
    out = int8_file(model)
    quantize_file(model, out, train.store.images[train.rows("train")[:CALIBRATION_IMAGES]])
    test = prepare_dataset(trained.config, run, split="test", progress=False)
    scores = {"fp32": _score(model, test, trained.task), "int8": _score(out, test, trained.task)}
    drop = scores["fp32"]["auc"] - scores["int8"]["auc"]
    report = {"file": str(out), "images": len(test.table), "auc_drop": drop, **scores, "forced": force}
    if drop > MAX_AUC_DROP and not force:
        out.unlink(missing_ok=True)
        raise QuantizationError(
            f"the int8 model's test AUC is {scores['int8']['auc']:.4f} against {scores['fp32']['auc']:.4f} in fp32 "
            f"(a drop of {drop:.4f}, more than {MAX_AUC_DROP}); it was not kept. Use --force to keep it anyway"
        )
    return report


def _import_quantization() -> Any:
    try:
        from onnxruntime import quantization
        from onnxruntime.quantization import shape_inference  # noqa: F401  (quant_pre_process lives there)
    except ImportError:
        raise MissingDependencyError("int8 quantisation needs onnxruntime: pip install onnxruntime") from None
    return quantization


def quantize_file(model: Path, out: Path, calibration: np.ndarray, batch: int = 32) -> Path:
    """Quantise the exported `model` to int8 at `out`: onnxruntime's pre-processing, then static quantisation in
    the QDQ format, per channel (int8 weights, uint8 activations), with activation ranges calibrated on the uint8
    NHWC `calibration` images. The benchmark (``benchmarks/inference.py``) measures exactly this.

    >>> quantize_file(Path("model.onnx"), Path("model.int8.onnx"), store.images[:256])  # doctest: +SKIP
    """
    quantization = _import_quantization()

    class Calibration(quantization.CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[dict[str, np.ndarray]] = (
                {INPUT_NAME: np.ascontiguousarray(calibration[i : i + batch])}
                for i in range(0, len(calibration), batch)
            )

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quantization.shape_inference.quant_pre_process(str(model), str(prepared))
        quantization.quantize_static(
            str(prepared), str(out), Calibration(), quant_format=quantization.QuantFormat.QDQ, per_channel=True,
            activation_type=quantization.QuantType.QUInt8, weight_type=quantization.QuantType.QInt8,
        )  # fmt: skip
    return out


def _score(model: Path, dataset: PreparedDataset, task: Task) -> dict[str, float]:
    """Macro ROC AUC and accuracy (multi-label: macro AUC over labels with both kinds, exact match at 0.5)."""
    session = create_session(model)
    images = dataset.store.images
    probs = np.concatenate(
        [session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(images[i : i + 64])})[0]
         for i in range(0, len(images), 64)]
    )  # fmt: skip
    return task.headline(dataset.table.targets(), probs, dataset.table.classes)
