"""Your own network: ``backbone=path/to/file.py:NAME``, ``backbone=package.module:NAME``, or a name given to
`register_backbone` from Python.

NAME is an ``nn.Module`` class or a function returning one; medtune calls it with ``num_classes`` and ``in_chans``
(and ``pretrained`` when it takes that parameter), so it builds the whole classifier, its last layer included. The
code is recorded as a `NetworkSource` (the file's text and its SHA-256): a run keeps a copy, and a trained run is
rebuilt from that copy, so it loads after the file moved or changed (a changed file is said). Errors in the file
(a syntax error, a missing NAME, a call that fails, outputs of the wrong shape) name the file and the line.

The normalisation is ImageNet's (timm's ``IMAGENET_DEFAULT_MEAN``/``STD``, 224 px, bilinear), as for torchvision's
networks; a ``pretrained_cfg`` dict on NAME (timm's keys: ``mean``, ``std``, ``input_size``, ``interpolation``)
changes it.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import linecache
import re
import sys
import traceback
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch import nn

from medtune._registry import suggest
from medtune.errors import ConfigError

#: Networks registered from Python (`register_backbone`): name -> class or function.
USER_BACKBONES: dict[str, Callable[..., nn.Module]] = {}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_LOADED: dict[tuple[str, str], types.ModuleType] = {}


def register_backbone(name: str, builder: Callable[..., nn.Module] | None = None) -> Any:
    """Make a network usable as ``backbone=NAME``: a ``nn.Module`` class or a function returning one, called with
    ``num_classes`` and ``in_chans``. Works as a decorator (``@register_backbone("mynet")``) or a call.

    The code of the file that defines it is recorded in each run, so a run loads in a later session even where
    nothing registers the name again (a script's ``if __name__ == "__main__":`` block is not run then).

    Raises:
        ConfigError: a name that is not an identifier, that timm already uses, or that is registered already for
            another network.
    """

    def add(item: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        import timm

        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ConfigError(f"register_backbone: name {name!r} must be an identifier such as 'mynet'")
        if timm.is_model(name):
            raise ConfigError(f"register_backbone: {name!r} is a timm model name; choose another name")
        if not callable(item):
            raise ConfigError(f"register_backbone({name!r}): {item!r} is not a class or a function")
        if USER_BACKBONES.get(name, item) is not item and _qualified(USER_BACKBONES[name]) != _qualified(item):
            raise ConfigError(f"backbone {name!r} is registered already for {_qualified(USER_BACKBONES[name])}")
        USER_BACKBONES[name] = item
        return item

    return add if builder is None else add(builder)


def _qualified(item: Any) -> str:
    return f"{getattr(item, '__module__', '?')}.{getattr(item, '__qualname__', repr(item))}"


def is_custom(backbone: str | None) -> bool:
    """Whether `backbone` names your own network rather than a timm model.

    >>> is_custom("nets/small.py:SmallNet"), is_custom("mypackage.nets:SmallNet"), is_custom("resnet18")
    (True, True, False)
    """
    if not isinstance(backbone, str):
        return False
    if backbone in USER_BACKBONES:
        return True
    prefix, colon, _ = backbone.partition(":")
    return bool(colon) and prefix not in ("hf-hub", "hf_hub", "local-dir", "timm")


@dataclass(frozen=True)
class NetworkSource:
    """Where a network's code is and what it was: the text recorded for a run.

    Attributes:
        spec: the ``backbone=`` value (``nets/small.py:SmallNet``, ``pkg.nets:SmallNet``, ``mynet``).
        kind: ``file``, ``module`` or ``registered``.
        attr: the class or function in the code (``SmallNet``).
        file: the code's file, absolute (None when it cannot be found, e.g. a class typed into a notebook).
        module: the module name (``module`` and ``registered`` kinds).
        sha256: the hash of the text.
        source: the text itself.
    """

    spec: str
    kind: str
    attr: str
    file: str | None
    module: str | None
    sha256: str | None
    source: str | None

    @property
    def label(self) -> str:
        """What people read: ``SmallNet (nets/small.py)``."""
        where = Path(self.file).name if self.file else self.module
        return f"{self.attr} ({where})" if where else self.attr

    @property
    def short_name(self) -> str:
        """For run names: the registered name, else the class or function name."""
        return self.spec if self.kind == "registered" else self.attr

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkSource:
        return cls(**{key: data.get(key) for key in cls.__dataclass_fields__})

    def changed(self) -> str | None:
        """What changed in the code since it was recorded (None when it is the same or cannot be read)."""
        if self.file is None or self.sha256 is None or not Path(self.file).is_file():
            return None
        now = _sha256(_read_text(Path(self.file), self.spec))
        return None if now == self.sha256 else f"{self.file} changed (sha256 {self.sha256[:12]} -> {now[:12]})"


def network_source(spec: str) -> NetworkSource:
    """Read the code `spec` names, as it is now.

    Raises:
        ConfigError: a file or module that does not exist, or a name registered nowhere (with the fix).
    """
    if spec in USER_BACKBONES:
        return _registered_source(spec, USER_BACKBONES[spec])
    where, _, attr = spec.rpartition(":")
    if not where or not _NAME.fullmatch(attr):
        raise ConfigError(
            f"backbone {spec!r}: give path/to/file.py:NAME or package.module:NAME, NAME being an nn.Module class or a "
            "function returning one"
        )
    if where.endswith(".py") or "/" in where or "\\" in where:
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise ConfigError(f"backbone {spec!r}: network file {path} does not exist; check the path")
        text = _read_text(path, spec)
        return NetworkSource(spec, "file", attr, str(path), None, _sha256(text), text)
    try:
        found = importlib.util.find_spec(where)
    except (ImportError, ValueError) as exc:
        found, problem = None, f": {exc}"
    else:
        problem = ""
    if found is None:
        raise ConfigError(
            f"backbone {spec!r}: no module {where!r} can be imported{problem}; install its package, run from the "
            "folder that holds it, or give the file as path/to/file.py:NAME"
        )
    origin = found.origin if found.origin and Path(found.origin).is_file() else None
    text = _read_text(Path(origin), spec) if origin else None
    return NetworkSource(spec, "module", attr, origin, where, _sha256(text) if text else None, text)


def _registered_source(name: str, builder: Callable[..., nn.Module]) -> NetworkSource:
    module = getattr(builder, "__module__", None)
    attr = getattr(builder, "__qualname__", name)
    try:
        file = inspect.getsourcefile(builder)
    except TypeError:
        file = None
    text = _read_text(Path(file), name) if file and Path(file).is_file() and "<locals>" not in attr else None
    return NetworkSource(name, "registered", attr, file if text else None, module, _sha256(text) if text else None,
                         text)  # fmt: skip


def _read_text(path: Path, spec: str) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"backbone {spec!r}: cannot read {path}: {exc}") from None


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def load_builder(source: NetworkSource) -> Callable[..., nn.Module]:
    """The class or function `source` names. A file's recorded text is run (for a trained run, the copy it was
    trained with); a module is imported (its package's relative imports need that); a registered name is taken
    from this process's registry, else from its recorded file.

    Raises:
        ConfigError: a syntax error or a failing import in the file, or no such NAME in it (file and line named).
    """
    if source.kind == "registered" and source.spec in USER_BACKBONES:
        return USER_BACKBONES[source.spec]
    if source.kind == "module":
        try:
            module = importlib.import_module(str(source.module))
        except Exception as exc:  # the user's code may raise anything while it imports
            raise ConfigError(_code_failure(source, exc, "importing it")) from None
    elif source.source is None:
        raise ConfigError(
            f"backbone {source.spec!r} is not registered in this process and its code was not recorded; call "
            f"medtune.register_backbone({source.spec!r}, ...) before loading the run"
        )
    else:
        module = _run_text(source)
    return _attribute(module, source)


def _run_text(source: NetworkSource) -> types.ModuleType:
    """Run the recorded text as a module of its own (cached by hash), the file's folder importable meanwhile."""
    filename = source.file or f"<{source.spec}>"
    key = (filename, str(source.sha256))
    if key in _LOADED:
        return _LOADED[key]
    stem = re.sub(r"\W", "_", Path(filename).stem)
    module = types.ModuleType(f"_medtune_user_{stem}_{str(source.sha256)[:8]}")
    module.__file__ = filename
    text = str(source.source)
    linecache.cache[filename] = (len(text), None, text.splitlines(keepends=True), filename)
    sys.modules[module.__name__] = module  # classes defined there pickle and introspect as usual
    try:
        with _importable(source.file):
            exec(compile(text, filename, "exec"), module.__dict__)
    except SyntaxError as exc:
        sys.modules.pop(module.__name__, None)
        line = (exc.text or "").strip()
        raise ConfigError(
            f"network file {filename} line {exc.lineno}: syntax error: {exc.msg}"
            + (f" ({line})" if line else "")
            + "; fix the file"
        ) from None
    except Exception as exc:  # the user's code may raise anything while it runs
        sys.modules.pop(module.__name__, None)
        raise ConfigError(_code_failure(source, exc, "running it")) from None
    _LOADED[key] = module
    return module


@contextmanager
def _importable(file: str | None) -> Iterator[None]:
    """The file's folder on ``sys.path`` for the duration (a network file may import its neighbours)."""
    folder = str(Path(file).parent) if file else None
    added = folder is not None and folder not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        yield
    finally:
        if added and folder in sys.path:
            sys.path.remove(str(folder))


def _attribute(module: types.ModuleType, source: NetworkSource) -> Callable[..., nn.Module]:
    found: Any = module
    for part in source.attr.split("."):
        found = getattr(found, part, None)
    if found is None or not callable(found):
        where = source.file or source.module
        known = [n for n, v in vars(module).items() if _builds_network(v) and getattr(v, "__module__", "") ==
                 module.__name__]  # fmt: skip
        raise ConfigError(
            f"network file {where} has no class or function {source.attr!r}.{suggest(source.attr, known)} "
            f"It defines: {', '.join(known) or 'no nn.Module class or function'}. Give backbone=FILE:NAME"
        )
    return found


def _builds_network(value: Any) -> bool:
    return inspect.isfunction(value) or (inspect.isclass(value) and issubclass(value, nn.Module))


def _code_failure(source: NetworkSource, exc: BaseException, doing: str) -> str:
    """``network file X line N raised NameError: ... while running it``: the deepest line in the user's file."""
    where = source.file or source.module or source.spec
    line = code_line(exc, source.file)
    at = f" line {line}" if line else ""
    return f"network file {where}{at} raised {type(exc).__name__}: {exc} while {doing}; fix the file"


def code_line(exc: BaseException, file: str | None) -> int | None:
    """The line of `file` deepest in `exc`'s traceback (None when the file is not in it)."""
    if file is None:
        return None
    lines = [frame.lineno for frame in traceback.extract_tb(exc.__traceback__) if frame.filename == file]
    return lines[-1] if lines else None


def definition_line(builder: Callable[..., Any]) -> int | None:
    """The line a class or function starts on, when its source can be found."""
    try:
        return inspect.getsourcelines(builder)[1]
    except (OSError, TypeError):
        code = getattr(builder, "__code__", None)
        return code.co_firstlineno if code is not None else None
