"""Three project shapes whose module names share no word with the requests of the tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from coditect.index import RepoIndex, index_directory

FLAT = {
    "wimble.py": '''"""Small helpers."""

import re

RATE = 3


def slugify_title(text):
    """Turn a title into a URL slug."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class Ledger:
    """An account holding money."""

    currency = "EUR"

    def __init__(self):
        self.entries = []

    def deposit(self, amount):
        """Put money into the account."""
        self.entries.append(amount)

    def withdraw(self, amount):
        """Take money out of the account."""
        self.entries.append(-amount)

    def balance(self):
        """Money currently held."""
        return sum(self.entries)
''',
    "tests/test_wimble.py": """from wimble import Ledger, slugify_title


def test_slug():
    assert slugify_title("A B") == "a-b"


def test_withdraw_reduces_the_balance():
    acc = Ledger()
    acc.deposit(5)
    acc.withdraw(2)
    assert acc.balance() == 3
""",
}

PACKAGE = {
    "korvo/__init__.py": '''"""Time spans."""

import re

__all__ = ["Timer", "format_duration", "parse_duration"]


def parse_duration(text):
    """Read a span like 1h30m as seconds."""
    hours = re.search(r"(\\d+)h", text)
    return int(hours.group(1)) * 3600 if hours else 0


def format_duration(seconds):
    """Write seconds as a span like 1h30m."""
    return f"{seconds // 3600}h{seconds % 3600 // 60}m"


class Timer:
    """Measures elapsed wall time."""

    def start(self):
        """Remember the current instant."""

    def elapsed(self):
        """Seconds since start."""
        return 0.0
''',
    "tests/test_spans.py": """from korvo import parse_duration


def test_hours():
    assert parse_duration("2h") == 7200
""",
}

SRC = {
    "src/plinth/__init__.py": """from plinth._alpha import Graph
from plinth._beta import load_settings, merge_dicts

__all__ = ["Graph", "load_settings", "merge_dicts"]
""",
    "src/plinth/_alpha.py": '''"""Nodes and edges."""


class Graph:
    """A directed graph with weighted edges."""

    def __init__(self):
        self.edges = {}

    def add_edge(self, src, dst, weight=1):
        """Connect two nodes."""
        self.edges.setdefault(src, {})[dst] = weight

    def shortest_path(self, src, dst):
        """The cheapest route between two nodes, as a list of nodes."""
        return [src, dst]

    def neighbours(self, node):
        """Nodes reachable in one step."""
        return list(self.edges.get(node, {}))
''',
    "src/plinth/_beta.py": '''"""Configuration files."""

import json


def load_settings(path):
    """Read settings from a JSON file."""
    with open(path) as fh:
        return merge_dicts({}, json.load(fh))


def merge_dicts(base, extra):
    """Combine two settings dictionaries, extra winning."""
    out = dict(base)
    out.update(extra)
    return out
''',
    "src/plinth/cli.py": '''import argparse

from plinth._beta import load_settings


def main(argv=None):
    """Command line entry point."""
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    args = parser.parse_args(argv)
    print(load_settings(args.config))
''',
    "tests/test_graph.py": """from plinth import Graph


def test_route_between_nodes():
    g = Graph()
    g.add_edge("a", "b")
    assert g.shortest_path("a", "b") == ["a", "b"]
""",
}

SHAPES = {"flat": FLAT, "package": PACKAGE, "src": SRC}


def write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture(params=sorted(SHAPES))
def shape(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, Path]:
    return request.param, write(tmp_path, SHAPES[request.param])


@pytest.fixture
def index_of(tmp_path: Path):
    def build(name: str) -> RepoIndex:
        root = write(tmp_path / name, SHAPES[name])
        return index_directory(root)

    return build


@pytest.fixture
def sources() -> dict[str, dict[str, str]]:
    return SHAPES
