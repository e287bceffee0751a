"""Where a class activation map is taken: the target layer of a timm backbone, and the reshape that turns its
output into a ``(B, C, H, W)`` map.

Grad-CAM weighs the channels of one layer's output by the gradient of a class score. The default layer is chosen
for any timm backbone:

- Convolutional networks: the module that produces the feature map global pooling averages (the tensor
  ``forward_features`` returns). There the Grad-CAM channel weights are the head's own weights (Grad-CAM equals
  the original CAM), the map has the most semantic channels, and it still has a spatial grid (7 x 7 at 224 px).
  For ResNets that is ``layer4``, the last feature stage. For EfficientNets and MobileNetV2 it is ``bn2``: the last
  stage (``blocks.6``, what timm's ``feature_info`` names) ends in a linear bottleneck without activation, and
  ``conv_head`` + ``bn2`` (1x1 convolution to 1280 channels, batch norm, activation) come after it, before pooling;
  their CAMs are cleaner than the bottleneck's. The module is found by a probe forward pass; timm's last
  ``feature_info`` stage is the fallback. At small working sizes that map is too coarse to point anywhere (1x1 at
  32 px), and the deepest feature stage with at least `MIN_MAP_SIZE` cells per side is taken instead.
- Vision transformers (token output): ``blocks[-1].norm1``, as the grad-cam documentation recommends. The class
  token alone feeds the head, so the gradient reaches the patch tokens only through the last block's attention;
  the final ``norm`` would give an empty map.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from medtune._registry import suggest
from medtune.errors import ConfigError

#: Cells per side below which a map cannot point anywhere useful (a 1x1 map is constant, 2x2 splits an X-ray into
#: quarters); when the deepest map of a small working size is that coarse, an earlier feature stage is explained.
MIN_MAP_SIZE = 4


def find_target_layer(
    backbone: nn.Module, name: str | None = None, image_size: int | None = None
) -> tuple[str, nn.Module]:
    """The layer a class activation map is taken from, with its dotted name.

    Args:
        backbone: a timm model (the ``backbone`` of a `medtune.models.Classifier`, or a whole timm classifier), or
            any network (your own: its last convolution).
        name: a dotted module name relative to `backbone` (``layer3``, ``blocks.10.norm1``); None chooses
            automatically (see the module docstring).
        image_size: the working size in pixels. When given, and the automatic layer's map would be smaller than
            `MIN_MAP_SIZE` cells per side there (stride 32 at 64 px: 2x2), the deepest feature stage whose map is
            large enough is chosen instead (``blocks.4``, 4x4 at 64 px).

    Returns:
        ``(name, module)``.

    Raises:
        ConfigError: `name` is not a module of `backbone` (the message names close matches), or no layer can be
            chosen automatically.

    >>> from medtune.models import create_model
    >>> lite0 = create_model("tf_efficientnet_lite0", num_classes=0)
    >>> find_target_layer(lite0)[0], find_target_layer(lite0, image_size=64)[0]
    ('bn2', 'blocks.4')
    """
    if name is not None:
        return name, _get_layer(backbone, name)
    if _is_token_model(backbone):
        found = _last_block_norm(backbone)
    else:
        found = _pooled_map_layer(backbone, image_size) or _last_feature_stage(backbone)
        found = found or _last_convolution(backbone, image_size)
    if found is None:
        raise ConfigError(
            f"cannot choose a Grad-CAM layer for {type(backbone).__name__} automatically; give one by name "
            f"(layer=NAME, --layer NAME), e.g. {', '.join(_layer_examples(backbone))}"
        )
    return found, backbone.get_submodule(found)


def _get_layer(backbone: nn.Module, name: str) -> nn.Module:
    names = [n for n, _ in backbone.named_modules() if n]
    if name not in names:
        raise ConfigError(
            f"{type(backbone).__name__} has no layer {name!r}.{suggest(name, names)} Give a dotted module name "
            f"relative to the backbone, e.g. {', '.join(_layer_examples(backbone))}"
        )
    return backbone.get_submodule(name)


def _feature_stages(backbone: nn.Module) -> list[str]:
    """timm's ``feature_info`` stages that are modules, shallow to deep."""
    info = getattr(backbone, "feature_info", None) or []
    names = {n for n, _ in backbone.named_modules()}
    return [e["module"] for e in info if isinstance(e, dict) and e.get("module") in names]


def _layer_examples(backbone: nn.Module) -> list[str]:
    return _feature_stages(backbone)[-3:] or [n for n, _ in backbone.named_children()][-3:]


def _is_token_model(backbone: nn.Module) -> bool:
    """Vision transformers in timm: a ``blocks`` sequence of token blocks and a count of prefix (class, register)
    tokens."""
    blocks = getattr(backbone, "blocks", None)
    prefix = getattr(backbone, "num_prefix_tokens", None)
    return isinstance(prefix, int) and isinstance(blocks, nn.Sequential | nn.ModuleList) and len(blocks) > 0


def _last_block_norm(backbone: nn.Module) -> str:
    last = len(backbone.blocks) - 1
    return f"blocks.{last}.norm1" if hasattr(backbone.blocks[last], "norm1") else f"blocks.{last}"


def _last_feature_stage(backbone: nn.Module) -> str | None:
    stages = _feature_stages(backbone)
    return stages[-1] if stages else None


def _pooled_map_layer(backbone: nn.Module, image_size: int | None) -> str | None:
    """The module whose output is the 4-D map ``forward_features`` returns (what global pooling averages), or,
    when that map is too coarse at `image_size`, the deepest feature stage that is not.

    A forward pass on zeros, in eval mode and without gradients, records which modules return that very tensor
    object (in-place activations and containers pass it on; identity modules are left aside). timm's last feature
    stage wins when it is one of them (``layer4``, not its last block or activation); otherwise the last module to
    finish, the outermost (``bn2`` rather than its activation ``bn2.act``).
    """
    if getattr(backbone, "forward_features", None) is None:
        return None
    for size in _probe_sizes(backbone, image_size):
        probed = _probe(backbone, size, backbone.forward_features)
        if probed is not None and isinstance(probed[1], torch.Tensor) and probed[1].ndim == 4:
            return _choose(backbone, *probed, sized=image_size is not None)
    return None


def _last_convolution(backbone: nn.Module, image_size: int | None) -> str | None:
    """For networks that are not timm's (your own, ``backbone=file.py:NAME``): the last 2-D convolution to run, or
    at a working size where its map is smaller than `MIN_MAP_SIZE` cells per side, the last one whose map is not."""
    side = image_size or 64
    probed = _probe(backbone, (side, side), backbone)
    modules = dict(backbone.named_modules())
    convolutions = [(n, out) for n, out in probed[0] if isinstance(modules[n], nn.Conv2d)] if probed else []
    if not convolutions:
        return None
    large = [name for name, out in convolutions if _cells(out, nhwc=False) >= MIN_MAP_SIZE]
    return large[-1] if image_size is not None and large else convolutions[-1][0]


def _probe_sizes(backbone: nn.Module, image_size: int | None) -> list[tuple[int, int]]:
    """The working size when known, else small first (the CPU pays for every pixel); fixed-size models accept only
    their own."""
    patch_embed = getattr(backbone, "patch_embed", None)
    fixed = getattr(patch_embed, "img_size", None)
    if fixed is not None and getattr(patch_embed, "strict_img_size", False):
        return [tuple(fixed)]
    if image_size is not None:
        return [(image_size, image_size)]
    pretrained = tuple((getattr(backbone, "pretrained_cfg", None) or {}).get("input_size", (3, 224, 224))[-2:])
    return [(64, 64), pretrained]


def _probe(
    backbone: nn.Module, size: tuple[int, int], forward: Callable[[torch.Tensor], object]
) -> tuple[list[tuple[str, torch.Tensor]], object] | None:
    """Every module's output, in the order the modules finish, and the output of `forward` (``forward_features``,
    or the whole network); None when it fails."""
    records: list[tuple[str, torch.Tensor]] = []  # the outputs are kept alive, so no two can share an identity

    def record(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            if isinstance(output, torch.Tensor):
                records.append((name, output))

        return hook

    modules = [(n, m) for n, m in backbone.named_modules() if n and not isinstance(m, nn.Identity)]
    handles = [module.register_forward_hook(record(name)) for name, module in modules]
    modes = {module: module.training for module in backbone.modules()}
    try:
        backbone.eval()
        with torch.no_grad():
            out = forward(_probe_input(backbone, size))
    except (RuntimeError, ValueError, AssertionError, TypeError):
        return None
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return records, out


def _choose(backbone: nn.Module, records: list[tuple[str, torch.Tensor]], out: torch.Tensor, sized: bool) -> str | None:
    producers = [name for name, output in records if output is out]
    if not producers:
        return None
    stages = _feature_stages(backbone)
    chosen = stages[-1] if stages and stages[-1] in producers else producers[-1]
    nhwc = getattr(backbone, "output_fmt", None) == "NHWC"
    if not sized or _cells(out, nhwc) >= MIN_MAP_SIZE:
        return chosen
    cells = {name: _cells(output, nhwc) for name, output in records}
    return next((stage for stage in reversed(stages) if cells.get(stage, 0) >= MIN_MAP_SIZE), chosen)


def _cells(output: torch.Tensor, nhwc: bool) -> int:
    """Cells per side of a 4-D map (the shorter side); 0 for anything else."""
    if output.ndim != 4:
        return 0
    return int(min(output.shape[1:3] if nhwc else output.shape[-2:]))


def _probe_input(backbone: nn.Module, size: tuple[int, int]) -> torch.Tensor:
    conv = next((m for m in backbone.modules() if isinstance(m, nn.Conv2d)), None)
    channels = conv.in_channels if conv is not None else 3
    parameter = next(backbone.parameters(), None)
    return torch.zeros(1, channels, *size, device=parameter.device if parameter is not None else None)


def create_reshape_transform(backbone: nn.Module) -> Callable[[torch.Tensor], torch.Tensor] | None:
    """The reshape ``pytorch_grad_cam`` applies to the target layer's activations and gradients.

    Vision transformers get `TokenGrid` (tokens to a patch grid); models whose stages output channels-last maps
    (timm's ``output_fmt == "NHWC"``: Swin, MambaOut, Sequencer...) get a permute to ``(B, C, H, W)``; CNNs need
    none (None).

    >>> from medtune.models import create_model
    >>> create_reshape_transform(create_model("vit_tiny_patch16_224", 0, pretrained=False))
    TokenGrid(prefix_tokens=1, grid=(14, 14))
    """
    if _is_token_model(backbone):
        grid = getattr(getattr(backbone, "patch_embed", None), "grid_size", None)
        return TokenGrid(backbone.num_prefix_tokens, tuple(grid) if grid is not None else None)
    if getattr(backbone, "output_fmt", None) == "NHWC":
        return channels_first
    return None


def channels_first(maps: torch.Tensor) -> torch.Tensor:
    """``(B, H, W, C)`` to ``(B, C, H, W)``; other shapes pass unchanged."""
    return maps.permute(0, 3, 1, 2) if maps.ndim == 4 else maps


@dataclass(frozen=True)
class TokenGrid:
    """Transformer tokens ``(B, N, C)`` to a map ``(B, C, H, W)``: the prefix tokens (class, distillation,
    register) are dropped and the patch tokens laid out on their grid, row by row.

    Args:
        prefix_tokens: tokens before the patches (timm's ``num_prefix_tokens``).
        grid: ``(rows, columns)`` of patches (timm's ``patch_embed.grid_size``); a token count that does not fit
            it (another input size) is taken as a square grid.
    """

    prefix_tokens: int
    grid: tuple[int, int] | None = None

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim == 4:  # a convolution inside the transformer (patch_embed.proj) is already a map
            return tokens
        if tokens.ndim != 3:
            raise ConfigError(
                f"cannot turn a layer output of shape {tuple(tokens.shape)} into a map: expected tokens "
                "(batch, tokens, channels); choose another layer"
            )
        patches = tokens[:, self.prefix_tokens :]
        rows, columns = self._grid(patches.shape[1])
        return patches.reshape(len(patches), rows, columns, patches.shape[2]).permute(0, 3, 1, 2)

    def _grid(self, count: int) -> tuple[int, int]:
        if self.grid is not None and self.grid[0] * self.grid[1] == count:
            return self.grid
        side = math.isqrt(count)
        if side * side != count:
            raise ConfigError(
                f"{count} patch tokens (after {self.prefix_tokens} prefix tokens) do not fill the grid "
                f"{self.grid} nor a square one; use a square input or choose another layer"
            )
        return side, side
