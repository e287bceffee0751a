"""Hub weights: where timm would download a backbone's weights from, checked without waiting on a network.

A copy already in the local cache (Hugging Face hub or torch hub) is used without any network; otherwise the host
is checked first with a short timeout, so that a machine without a network fails in seconds with a message that
says how to supply the file, instead of after long retries. ``HF_HUB_OFFLINE`` makes the failure immediate.

`medtune.models.create_model` asks here last, after a file the user names and the packaged weights
(`medtune.models.weights`).
"""

from __future__ import annotations

import os
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

from medtune.errors import WeightsError

#: Seconds allowed for resolving and connecting to the weights' host before a download is attempted.
REACHABILITY_TIMEOUT_S = 3.0

_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}


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
