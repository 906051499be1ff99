"""Helpers shared by the benchmarks: fresh copies of the example repository."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calculator"
REQUESTS = ROOT / "examples" / "requests.txt"


def fresh_repo(parent: Path, name: str = "calculator") -> Path:
    """A git repository with a copy of examples/calculator committed on main."""
    repo = parent / name
    shutil.copytree(EXAMPLE, repo, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    for args in (["init", "-q", "-b", "main"], ["add", "-A"], ["commit", "-qm", "initial"]):
        subprocess.run(
            ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench", *args],
            cwd=repo,
            check=True,
            capture_output=True,
        )
    return repo


def requests() -> list[str]:
    """The requests of examples/requests.txt (comments and blank lines skipped)."""
    lines = REQUESTS.read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]
