"""Building your own network (`medtune.models.custom`) and fitting it to medtune's `Classifier`: a body and a head.

The network is built whole, by your code. One forward pass on a small batch checks its output (``(batch,
num_classes)`` logits, else the file and line are named) and finds its head: the ``nn.Linear`` whose output is the
network's output. That layer becomes the head and the rest the body, so ``strategy=freeze|gradual``, separate
learning rates, embeddings and Grad-CAM treat your network as they treat a timm backbone. A network whose output
comes from anything else (a 1x1 convolution, a sum) stays whole, with no head of its own: it fine-tunes, and the
strategies that need a head say so.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import nn

from medtune.errors import ConfigError
from medtune.models.custom import NetworkSource, _importable, code_line, definition_line, load_builder

#: The normalisation of a network that declares none: ImageNet's, as torchvision's and most networks' weights use.
DEFAULT_DATA_CONFIG: dict[str, Any] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "input_size": (3, 224, 224),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
    "crop_mode": "center",
}
#: Working size of the forward pass that checks a network when the run's size is not known yet.
PROBE_SIZE = 64


class NoHead(nn.Identity):
    """Where the head would be, for a network whose output does not come from a final linear layer."""

    def __init__(self, out_features: int) -> None:
        super().__init__()
        self.out_features = out_features


def custom_data_config(source: NetworkSource) -> dict[str, Any]:
    """The network's normalisation: its ``pretrained_cfg`` (or ``default_cfg``) over `DEFAULT_DATA_CONFIG`."""
    builder = load_builder(source)
    declared = getattr(builder, "pretrained_cfg", None) or getattr(builder, "default_cfg", None) or {}
    if not isinstance(declared, dict):
        raise ConfigError(
            f"{source.label}: pretrained_cfg must be a dict with mean, std, input_size..., "
            f"got {type(declared).__name__}"
        )
    return {**DEFAULT_DATA_CONFIG, **{k: v for k, v in declared.items() if k in DEFAULT_DATA_CONFIG}}


def build_network(source: NetworkSource, num_classes: int, in_chans: int, pretrained: bool = False) -> nn.Module:
    """Call the network's class or function with ``num_classes`` and ``in_chans`` (and ``pretrained`` when it takes
    that parameter).

    Raises:
        ConfigError: it does not take those parameters, it fails, or it returns something else than an
            ``nn.Module``; the message names the file and the line.
    """
    builder = load_builder(source)
    kwargs: dict[str, Any] = {"num_classes": num_classes, "in_chans": in_chans}
    call = f"{source.attr}(num_classes={num_classes}, in_chans={in_chans})"
    parameters = _parameters(builder)
    if parameters is not None:
        open_keywords = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
        missing = [key for key in kwargs if key not in parameters and not open_keywords]
        if missing:
            raise ConfigError(
                f"{_where(source, definition_line(builder))}: {source.attr} must take num_classes and in_chans "
                f"(medtune calls {call}); add {' and '.join(missing)} to its parameters"
            )
        if "pretrained" in parameters:
            kwargs["pretrained"] = pretrained
    try:
        with _importable(source.file):
            network = builder(**kwargs)
    except Exception as exc:  # the user's code may raise anything
        raise ConfigError(f"{_where(source, code_line(exc, source.file))}: {call} raised {type(exc).__name__}: "
                          f"{exc}; fix the file") from None  # fmt: skip
    if not isinstance(network, nn.Module):
        raise ConfigError(
            f"{_where(source, definition_line(builder))}: {call} returned {type(network).__name__}, expected an "
            "nn.Module (a class deriving from torch.nn.Module, or a function returning one)"
        )
    return network


def _parameters(builder: Any) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(builder).parameters)
    except (TypeError, ValueError):
        return None


def _where(source: NetworkSource, line: int | None) -> str:
    where = source.file or source.module or source.spec
    return f"network file {where}" + (f" line {line}" if line else "")


def split_network(
    network: nn.Module, source: NetworkSource, num_classes: int, in_chans: int, image_size: int | None = None
) -> tuple[nn.Module, nn.Linear | None]:
    """Check the network's output on a batch of two images and take its final linear layer out as the head.

    Returns:
        ``(body, head)``: the network with its final ``nn.Linear`` replaced by ``nn.Identity`` and that layer; or
        the network whole and None when its output does not come from a linear layer.

    Raises:
        ConfigError: the forward pass fails, or its output is not ``(2, num_classes)`` (file and line named).
    """
    size = image_size or PROBE_SIZE
    images = torch.randn(2, in_chans, size, size, generator=torch.Generator().manual_seed(0))
    out, calls = _probe(network, source, images, num_classes)
    last = calls[-1] if calls else None
    if last is None or last[2] is not out or not last[0]:
        return network, None
    name, linear, _ = last
    _replace(network, name, nn.Identity())
    body_out = _forward(network, images)
    if body_out.shape == (2, linear.in_features) and torch.allclose(linear(body_out), out, atol=1e-5):
        return network, linear
    _replace(network, name, linear)  # something after the layer changes its output: the network stays whole
    return network, None


def _probe(
    network: nn.Module, source: NetworkSource, images: torch.Tensor, num_classes: int
) -> tuple[torch.Tensor, list[tuple[str, nn.Linear, torch.Tensor]]]:
    """The network's output on `images` (eval mode, no gradients) and each linear layer's call, in order."""
    calls: list[tuple[str, nn.Linear, torch.Tensor]] = []
    names = {module: name for name, module in network.named_modules()}
    hooks = [
        module.register_forward_hook(lambda m, _args, output: calls.append((names[m], m, output)))
        for module in network.modules()
        if isinstance(module, nn.Linear)
    ]
    batch = f"a batch of 2 images of {in_chans_text(images)}"
    try:
        out = _forward(network, images)
    except Exception as exc:  # the user's forward may raise anything
        raise ConfigError(f"{_where(source, code_line(exc, source.file))}: the network failed on {batch}: "
                          f"{type(exc).__name__}: {exc}; fix the file") from None  # fmt: skip
    finally:
        for hook in hooks:
            hook.remove()
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, num_classes):
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise ConfigError(
            f"{_where(source, definition_line(type(network)))}: {source.attr} returned outputs of shape {got} for "
            f"{batch}; expected class scores of shape (2, {num_classes}): its last layer must have "
            f"num_classes={num_classes} outputs"
        )
    return out, calls


def in_chans_text(images: torch.Tensor) -> str:
    return "x".join(str(n) for n in images.shape[1:])


def _forward(network: nn.Module, images: torch.Tensor) -> Any:
    modes = {module: module.training for module in network.modules()}
    try:
        network.eval()
        with torch.no_grad():
            return network(images)
    finally:
        for module, training in modes.items():
            module.training = training


def _replace(network: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = network.get_submodule(parent_name) if parent_name else network
    parent._modules[child] = module
