import hashlib
import os
from pathlib import Path

import pytest

from coditect.agents.base import AgentLifecycle, AgentStatus
from coditect.domain import TestReport
from coditect.state.sql import SqlStore, sqlite_url
from coditect.taskqueue.world_model import WorldModel, compile_glob, is_ignored


def write(root: Path, rel: str, text: str) -> Path:
    p = root / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(text)
    return p


def age(path: Path, seconds: int = 10) -> None:
    """Move the mtime into the past so the file is not 'racy' for the next scan."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns - seconds * 1_000_000_000))


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    files = {
        "README.md": "hi",
        "pkg/__init__.py": "",
        "pkg/a.py": "A = 1\n",
        "pkg/sub/b.py": "B = 2\n",
        "tests/test_a.py": "def test_a(): pass\n",
        "tests/unit/test_b.py": "def test_b(): pass\n",
        ".git/HEAD": "ref",
        "pkg/__pycache__/a.cpython-311.pyc": "x",
        "pkg/c.pyc": "x",
        ".coditect/junit.xml": "<x/>",
        "node_modules/m/index.js": "",
        ".venv/bin/python": "",
    }
    for rel, text in files.items():
        age(write(tmp_path, rel, text))
    return tmp_path


def test_full_scan_hashes_and_ignores(tree: Path) -> None:
    w = WorldModel(tree)
    stats = w.scan()
    assert w.files() == [
        "README.md",
        "pkg/__init__.py",
        "pkg/a.py",
        "pkg/sub/b.py",
        "tests/test_a.py",
        "tests/unit/test_b.py",
    ]
    assert (stats.files, stats.hashed, stats.added, stats.modified, stats.deleted) == (
        6,
        6,
        6,
        0,
        0,
    )
    rec = w.get("pkg/a.py")
    assert rec is not None
    assert rec.sha256 == hashlib.sha256(b"A = 1\n").hexdigest()
    assert rec.size == 6
    assert w.get("pkg/c.pyc") is None
    assert w.snapshot()["README.md"] == hashlib.sha256(b"hi").hexdigest()
    assert w.version == 1
    assert len(w) == 6 and "pkg/a.py" in w


def test_rescan_hashes_only_changed_files(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    again = w.scan()
    assert (again.hashed, again.changed) == (0, 0)
    assert w.version == 1

    write(tree, "pkg/a.py", "A = 100\n")
    write(tree, "pkg/new.py", "N = 1\n")
    (tree / "tests/unit/test_b.py").unlink()
    stats = w.scan()
    assert (stats.added, stats.modified, stats.deleted) == (1, 1, 1)
    assert stats.hashed == 2
    assert w.version == 2
    assert w.changed_since(1) == ["pkg/a.py", "pkg/new.py", "tests/unit/test_b.py"]
    assert w.changed_since(2) == []
    assert len(w.changed_since(0)) == 7  # every file ever known, deletions included
    assert w.get("tests/unit/test_b.py") is None


def test_touch_without_content_change_is_not_a_change(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    p = tree / "pkg/a.py"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    stats = w.scan()
    assert (stats.hashed, stats.modified) == (1, 0)
    assert w.version == 1
    rec = w.get("pkg/a.py")
    assert rec is not None and rec.mtime_ns == p.stat().st_mtime_ns
    assert w.glob("pkg/a.py") == [rec]


def test_glob_cache_sees_touched_records(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    before = w.glob("pkg/*.py")
    p = tree / "pkg/a.py"
    os.utime(p, ns=(p.stat().st_atime_ns, p.stat().st_mtime_ns + 5_000_000_000))
    w.scan()
    after = w.glob("pkg/*.py")
    assert after != before and after[1] == w.get("pkg/a.py")


def test_same_size_rewrite_right_after_scan_is_seen(tmp_path: Path) -> None:
    # Same size, possibly the same coarse mtime tick: the racy-file rule must catch it.
    p = write(tmp_path, "f.py", "x = 1\n")
    w = WorldModel(tmp_path)
    w.scan()
    p.write_text("x = 2\n")
    stats = w.scan()
    assert stats.modified == 1
    assert w.get("f.py").sha256 == hashlib.sha256(b"x = 2\n").hexdigest()


def test_readd_after_delete_is_reported_once(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    (tree / "README.md").unlink()
    w.scan()
    write(tree, "README.md", "back")
    w.scan()
    assert w.changed_since(1) == ["README.md"]
    assert w.changed_since(2) == ["README.md"]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("pkg/*.py", ["pkg/__init__.py", "pkg/a.py"]),
        ("**/test_*.py", ["tests/test_a.py", "tests/unit/test_b.py"]),
        ("tests/**/*.py", ["tests/test_a.py", "tests/unit/test_b.py"]),
        ("pkg/**", ["pkg/__init__.py", "pkg/a.py", "pkg/sub/b.py"]),
        ("*.md", ["README.md"]),
        ("*", ["README.md"]),
        (
            "**/*.py",
            [
                "pkg/__init__.py",
                "pkg/a.py",
                "pkg/sub/b.py",
                "tests/test_a.py",
                "tests/unit/test_b.py",
            ],
        ),
        ("pkg/?.py", ["pkg/a.py"]),
        ("pkg/[ab].py", ["pkg/a.py"]),
        ("*/sub/*.py", ["pkg/sub/b.py"]),
        ("pkg/a.py", ["pkg/a.py"]),
        ("pkg/missing.py", []),
        ("nope/**/*.py", []),
    ],
)
def test_glob(tree: Path, pattern: str, expected: list[str]) -> None:
    w = WorldModel(tree)
    w.scan()
    assert [r.path for r in w.glob(pattern)] == expected
    assert [r.path for r in w.glob(pattern)] == expected  # cached answer is the same


def test_glob_cache_is_refreshed_by_a_changing_scan(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    assert len(w.glob("pkg/*.py")) == 2
    write(tree, "pkg/z.py", "")
    w.scan()
    assert [r.path for r in w.glob("pkg/*.py")] == ["pkg/__init__.py", "pkg/a.py", "pkg/z.py"]


def test_compile_glob_semantics() -> None:
    assert compile_glob("**/x.py").match("x.py")
    assert compile_glob("**/x.py").match("a/b/x.py")
    assert not compile_glob("*.py").match("a/x.py")
    assert compile_glob("a/**/x.py").match("a/x.py")
    assert not compile_glob("a/**/x.py").match("ab/x.py")
    assert compile_glob("[!a]*.py").match("b.py")
    assert not compile_glob("[!a]*.py").match("a.py")


def test_is_ignored() -> None:
    assert is_ignored(".git/config")
    assert is_ignored("pkg/__pycache__/m.cpython-311.pyc")
    assert is_ignored(".coditect/junit.xml")
    assert not is_ignored("pkg/m.py")
    assert is_ignored("build/out.txt", ("build/*",))


def test_custom_ignore(tree: Path) -> None:
    w = WorldModel(tree, ignore=("tests", "*.md"))
    w.scan()
    assert ".git/HEAD" in w.files()
    assert not any(p.startswith("tests/") for p in w.files())
    assert "README.md" not in w


def test_list_dir_and_directories(tree: Path) -> None:
    w = WorldModel(tree)
    w.scan()
    assert w.list_dir("pkg") == ["pkg/__init__.py", "pkg/a.py"]
    assert w.list_dir("") == ["README.md"]
    assert w.directories() == ["", "pkg", "pkg/sub", "tests", "tests/unit"]


def test_read_text(tree: Path) -> None:
    w = WorldModel(tree)
    assert w.read_text("pkg/a.py") == "A = 1\n"


def test_tests_and_agents() -> None:
    w = WorldModel(Path("."))
    assert w.latest_tests is None
    report = TestReport(passed=3)
    w.record_tests(report)
    assert w.latest_tests == report
    w.set_agent_status(
        AgentStatus(name="tester", capabilities=("test",), state=AgentLifecycle.IDLE)
    )
    w.set_agent_status(AgentStatus(name="coder", capabilities=("code",), state=AgentLifecycle.BUSY))
    w.set_agent_status(
        AgentStatus(name="coder", capabilities=("code",), state=AgentLifecycle.IDLE, tasks_done=1)
    )
    assert [(a.name, a.tasks_done) for a in w.agents()] == [("coder", 1), ("tester", 0)]


async def test_persistence_makes_the_first_scan_incremental(tree: Path, tmp_path_factory) -> None:
    db = tmp_path_factory.mktemp("db") / "state.db"
    store = SqlStore(sqlite_url(db))
    try:
        first = WorldModel(tree)
        first.scan()
        await first.save(store, "proj")

        write(tree, "pkg/a.py", "A = 'changed'\n")
        second = WorldModel(tree)
        assert await second.load(store, "proj") == 6
        assert second.version == 1
        stats = second.scan()
        assert (stats.hashed, stats.modified, stats.added, stats.deleted) == (1, 1, 0, 0)
        assert second.changed_since(1) == ["pkg/a.py"]
        assert second.snapshot() == {**first.snapshot(), "pkg/a.py": second.get("pkg/a.py").sha256}
        assert await WorldModel(tree).load(store, "other") == 0
    finally:
        await store.close()


def test_changed_since_with_many_changes_and_deletions(tmp_path: Path) -> None:
    for d in range(10):
        (tmp_path / f"d{d}").mkdir()
    for i in range(300):
        (tmp_path / f"d{i % 10}/f{i}.txt").write_text(str(i))
    w = WorldModel(tmp_path)
    w.scan()
    (tmp_path / "d0/f0.txt").unlink()
    (tmp_path / "d9/f299.txt").unlink()
    write(tmp_path, "d5/new.txt", "n")
    w.scan()
    everything = w.changed_since(0)
    assert len(everything) == 301
    assert everything == sorted(everything)
    assert "d0/f0.txt" in everything and "d5/new.txt" in everything
    assert w.changed_since(1) == ["d0/f0.txt", "d5/new.txt", "d9/f299.txt"]
    assert w.last_changed("d0/f0.txt") == 2 and w.last_changed("d1/f1.txt") == 1
    assert len(w.glob("**/f1*.txt")) == len([p for p in w.files() if "/f1" in p])


def test_links_are_known_as_links_and_not_read_through(tmp_path):

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("a = 1\n")
    os.symlink("pkg/a.py", tmp_path / "alias.py")
    os.symlink("/etc/hostname", tmp_path / "outside")
    os.symlink("missing.py", tmp_path / "dangling.py")
    os.symlink("pkg", tmp_path / "pkglink")
    world = WorldModel(tmp_path)
    world.scan()
    assert world.links() == {"alias.py": "pkg/a.py", "outside": "/etc/hostname"}
    assert world.link_target("alias.py") == "pkg/a.py" and world.link_target("pkg/a.py") is None
    assert "dangling.py" not in world and "pkglink/a.py" not in world
    before = world.snapshot()
    (tmp_path / "pkg" / "a.py").write_text("a = 2\n")
    world.scan()
    after = world.snapshot()
    changed = {p for p in after if before.get(p) != after[p]}
    assert changed == {"pkg/a.py"}  # editing the target does not change the link
