import shutil
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "calculator"


@pytest.fixture
def calc(tmp_path) -> Path:
    """A fresh copy of examples/calculator (no git)."""
    dest = tmp_path / "calculator"
    shutil.copytree(EXAMPLE, dest, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return dest
