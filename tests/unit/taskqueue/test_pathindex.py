import random

import pytest

from coditect.taskqueue.pathindex import PathIndex, compile_glob, has_magic

PATTERNS = [
    "**",
    "*",
    "**/*",
    "**/*.py",
    "**/test_*.py",
    "*/test_*.py",
    "a/**",
    "a/**/*.py",
    "a/*.py",
    "a/b/*",
    "a/b/**/x?.txt",
    "**/b/*.py",
    "*/b/**/*.json",
    "a/[bc]/*.py",
    "a/[!b]/**",
    "**/x1.txt",
    "c/**/test_*",
    "a/b/x1.txt",
    "nope/**",
    "**/*_test.py",
    "a/b*/**/*.py",
    "**/b/**/*.py",
    "[ab]/**/t*.py",
]


def sample_paths(n: int = 600) -> list[str]:
    rng = random.Random(3)
    names = [
        "x1.txt",
        "x2.txt",
        "test_a.py",
        "test_b.py",
        "mod.py",
        "m_test.py",
        "d.json",
        "README",
        "__init__.py",
    ]
    dirs = ["", "a", "a/b", "a/c", "a/b/c", "a/bb", "b", "c", "c/b/d", "ab"]
    out = {f"{d}/{rng.choice(names)}".lstrip("/") for _ in range(n) for d in [rng.choice(dirs)]}
    out |= {f"a/b/deep{i}/test_{i % 7}.py" for i in range(40)}
    return sorted(out)


@pytest.mark.parametrize("pattern", PATTERNS)
def test_index_agrees_with_brute_force(pattern: str) -> None:
    paths = sample_paths()
    index = PathIndex(reversed(paths))
    regex = compile_glob(pattern)
    assert index.glob(pattern) == [p for p in paths if regex.match(p)]


def test_literal_and_under() -> None:
    index = PathIndex(["a/x.py", "a/y.py", "ab/z.py", "b.py"])
    assert index.glob("a/x.py") == ["a/x.py"]
    assert index.glob("a/q.py") == []
    assert index.under("a") == ["a/x.py", "a/y.py"]
    assert index.under("") == ["a/x.py", "a/y.py", "ab/z.py", "b.py"]
    assert index.dirs == ["", "a", "ab"]


def test_has_magic() -> None:
    assert has_magic("*.py") and has_magic("a?") and has_magic("[ab]")
    assert not has_magic("a/b.py")
