"""An exported model (``medtune export``): an ONNX graph that takes uint8 images as the image store holds them and
returns class probabilities (a segmenter: mask probabilities), with everything needed to prepare its inputs in its
metadata.

The graph holds the normalisation, the layout change and the softmax (sigmoid for multi-label and masks), so a client
only resizes: the trap of an ONNX classifier whose normalisation lives outside the graph does not exist here. A
classifier trained with ``masks=SEG_RUN`` is exported with its segmenter beside it (``<model>.segmenter.onnx``,
named in its metadata), so neither needs the run directories.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medtune.config import Config
from medtune.errors import DataError, MissingDependencyError
from medtune.models import Preprocessing
from medtune.runs.resolve import Resolved
from medtune.tasks import Task, task_of_meta

#: Prefix of medtune's keys in the model's ``metadata_props``.
META_PREFIX = "medtune."
#: The graph's input and output names.
INPUT_NAME, OUTPUT_NAME = "images", "probabilities"


def parity_file(model: Path) -> Path:
    """``model.parity.json`` beside ``model.onnx``: the export's parity check and its checkpoint's SHA-256.

    >>> parity_file(Path("export/model.onnx")).name
    'model.parity.json'
    """
    return model.with_suffix(".parity.json")


def onnx_metadata(values: dict[str, Any]) -> dict[str, str]:
    """``metadata_props`` entries: each value as JSON text under ``medtune.<key>``.

    >>> onnx_metadata({"classes": ["a", "b"]})
    {'medtune.classes': '["a", "b"]'}
    """
    return {f"{META_PREFIX}{key}": json.dumps(value) for key, value in values.items()}


@dataclass(frozen=True)
class ExportedModel:
    """An ONNX model written by ``medtune export``, opened on onnxruntime.

    Attributes:
        path: the ``.onnx`` file.
        session: the onnxruntime inference session (CPU).
        meta: the model's medtune metadata (JSON values).
    """

    path: Path
    session: Any
    meta: dict[str, Any]

    @property
    def config(self) -> Config:
        """The resolved configuration of the run it was exported from."""
        return Config(**self.meta["config"])

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(self.meta["classes"])

    @property
    def task(self) -> Task:
        """The task of the run it was exported from (`medtune.tasks`)."""
        return task_of_meta(self.meta)

    @property
    def thresholds(self) -> tuple[float, ...] | None:
        values = self.meta.get("thresholds")
        return None if values is None else tuple(float(v) for v in values)

    @property
    def resolved(self) -> Resolved:
        """The resolution the model was trained with (the store spec new images are prepared in)."""
        return Resolved(self.config, Preprocessing.from_dict(self.meta["preprocessing"]))

    @property
    def checkpoint(self) -> Path:
        """The file the model was loaded from (it names cached predicted masks, as a run's checkpoint does)."""
        return self.path

    @property
    def in_chans(self) -> int:
        return int(self.meta["in_chans"])

    @property
    def segmenter(self) -> Path | None:
        """The exported segmenter beside a classifier trained with ``masks=SEG_RUN`` (None: it has none)."""
        name = self.meta.get("segmenter")
        return None if name is None else self.path.parent / name

    def inference_model(self, tta: bool | None = None, channels_last: bool | None = None) -> Any:
        """A torch module around the session: uint8 ``(B, C, H, W)`` images in, probabilities out, as the run's
        own ``inference_model`` answers."""
        return _onnx_module(self, self.config.tta if tta is None else tta)

    def predict(self, images: np.ndarray, tta: bool = False) -> np.ndarray:
        """Probabilities ``(N, K)`` for uint8 images ``(N, H, W, C)`` as the store holds them; `tta` averages each
        image with its horizontal mirror."""
        images = np.ascontiguousarray(images, dtype=np.uint8)
        probs = self.session.run([OUTPUT_NAME], {INPUT_NAME: images})[0]
        if tta:
            mirrored = np.ascontiguousarray(images[:, :, ::-1])
            again = self.session.run([OUTPUT_NAME], {INPUT_NAME: mirrored})[0]
            probs = (probs + (again[:, :, ::-1] if probs.ndim == 3 else again)) / 2  # a mask is mirrored back
        return probs.astype(np.float32)


def _onnx_module(model: ExportedModel, tta: bool) -> Any:
    """An exported model as a torch module (CPU): uint8 NCHW tensors in, probability tensors out, for the code
    that takes a run's ``inference_model`` (masks predicted by an exported segmenter)."""
    import torch

    class OnnxModule(torch.nn.Module):
        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return torch.from_numpy(model.predict(images.permute(0, 2, 3, 1).cpu().numpy(), tta))

    return OnnxModule()


def create_session(path: str | os.PathLike) -> Any:
    """An onnxruntime CPU session for `path`.

    Raises:
        MissingDependencyError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise MissingDependencyError("onnxruntime is needed for ONNX models: pip install onnxruntime") from None
    options = ort.SessionOptions()
    options.log_severity_level = 3  # warnings and above only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def load_exported(path: str | os.PathLike) -> ExportedModel:
    """Open a model written by ``medtune export``.

    Raises:
        DataError: the file is missing, not an ONNX model, or not one medtune exported (no metadata).

    >>> model = load_exported("runs/pneumoniamnist-tf_efficientnet_lite0/export/model.onnx")  # doctest: +SKIP
    >>> model.classes  # doctest: +SKIP
    ('normal', 'pneumonia')
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path} does not exist; export a run first: medtune export RUN --out {path}")
    try:
        session = create_session(path)
    except MissingDependencyError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise DataError(f"{path} is not a readable ONNX model ({exc}); export the run again") from None
    props = session.get_modelmeta().custom_metadata_map
    meta = {k.removeprefix(META_PREFIX): json.loads(v) for k, v in props.items() if k.startswith(META_PREFIX)}
    if "config" not in meta or "classes" not in meta:
        raise DataError(f"{path} was not exported by medtune (no medtune metadata); export it with medtune export")
    return ExportedModel(path, session, meta)
