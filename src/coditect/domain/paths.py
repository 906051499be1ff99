"""Facts about project paths that every layer agrees on."""

from __future__ import annotations

__all__ = ["is_test_path"]

_TEST_DIRS = frozenset({"tests", "test"})


def is_test_path(path: str) -> bool:
    """True for pytest files (``test_*.py``, ``*_test.py``, ``conftest.py``) and files in tests/."""
    if not path.endswith(".py"):
        return False
    *dirs, name = path.split("/")
    return (
        name.startswith("test_")
        or name.endswith("_test.py")
        or name == "conftest.py"
        or any(d in _TEST_DIRS for d in dirs)
    )
