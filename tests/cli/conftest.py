"""The command-line tests share the session's trained runs (`tiny_run`, `tiny_cxr3_run`) from tests/conftest.py."""

from tests.conftest import TINY

__all__ = ["TINY"]
