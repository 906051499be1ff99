"""Generated modules git ignores: read from a checkout, written into a clone (real git)."""

import subprocess

import pytest

from coditect.generated import (
    MAX_MODULE_BYTES,
    generated_modules,
    generated_note,
    read_generated_modules,
    write_generated_modules,
)


def _git(cwd, *args):
    subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=A", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture
def checkout(tmp_path):
    """A project whose version module is ignored by git, and a copy of its commits."""
    proj = tmp_path / "proj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "pkg" / "__init__.py").write_text("from pkg._version import v\n")
    (proj / ".gitignore").write_text("pkg/_version.py\npkg/_big.py\npkg/_latin.py\nbuild/\n")
    _git(proj, "init", "-q")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-qm", "init")
    (proj / "pkg" / "_version.py").write_text("v = '1.0'\n")
    (proj / "build" / "lib").mkdir(parents=True)
    (proj / "build" / "lib" / "mod.py").write_text("x = 1\n")
    tree = tmp_path / "tree"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("from pkg._version import v\n")
    return proj, tree


def test_the_checkouts_generated_modules_are_read_as_text(checkout):
    proj, tree = checkout
    (proj / "pkg" / "_big.py").write_text("#" * (MAX_MODULE_BYTES + 1))
    (proj / "pkg" / "_latin.py").write_bytes(b"s = '\xe9'\n")
    assert generated_modules(proj, tree) == ["pkg/_big.py", "pkg/_latin.py", "pkg/_version.py"]
    # Too large, or not UTF-8: not sent to workers.
    assert read_generated_modules(proj, tree) == {"pkg/_version.py": "v = '1.0'\n"}


def test_a_bare_repository_or_a_plain_folder_has_none(tmp_path, checkout):
    proj, tree = checkout
    bare = tmp_path / "bare.git"
    _git(tmp_path, "clone", "-q", "--bare", str(proj), str(bare))
    assert read_generated_modules(bare, tree) == {}
    assert read_generated_modules(tmp_path / "missing", tree) == {}


def test_written_only_beside_committed_code_and_never_over_a_file(tmp_path):
    tree = tmp_path / "clone"
    (tree / "pkg").mkdir(parents=True)
    (tree / "pkg" / "__init__.py").write_text("")
    (tree / "pkg" / "kept.py").write_text("kept = 1\n")
    (tree / "data").mkdir()
    sent = {
        "pkg/_version.py": "v = '1.0'\n",
        "pkg/kept.py": "kept = 2\n",  # the commits have it
        "/etc/evil.py": "x = 1\n",
        "../outside.py": "x = 1\n",
        "pkg/../../outside.py": "x = 1\n",
        "pkg/notes.txt": "text\n",
        "data/gen.py": "x = 1\n",  # no committed Python code there
        "missing/gen.py": "x = 1\n",
    }
    assert write_generated_modules(tree, sent) == ["pkg/_version.py"]
    assert (tree / "pkg" / "_version.py").read_text() == "v = '1.0'\n"
    assert (tree / "pkg" / "kept.py").read_text() == "kept = 1\n"
    assert not (tmp_path / "outside.py").exists()
    assert not (tree / "data" / "gen.py").exists()
    assert not (tree / "pkg" / "notes.txt").exists()


def test_the_note_names_at_most_three():
    assert generated_note([]) == ""
    note = generated_note(["a/_v.py", "b/_v.py", "c/_v.py", "d/_v.py"])
    assert note.startswith("4 Python file(s) that git ignores were copied")
    assert note.endswith(": a/_v.py, b/_v.py, c/_v.py ...")
