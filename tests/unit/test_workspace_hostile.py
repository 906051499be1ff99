"""Workspaces with hostile or unusual input: file modes, symbolic links, other languages, long
requests (each a finding of issue 12)."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from coditect.agents.codejob import write_atomic
from coditect.errors import InputError
from coditect.workspace import (
    SUBJECT_MAX_CHARS,
    bounded_commit_message,
    check_python_project,
    open_workspace,
)


def git(cwd, *args):
    return subprocess.run(
        ["git", "-c", "user.email=a@b", "-c", "user.name=A", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path):
    top = tmp_path / "repo"
    (top / "pkg").mkdir(parents=True)
    (top / "pkg" / "mod.py").write_text("x = 1\n")
    (top / "run.py").write_text("#!/usr/bin/env python3\nprint(1)\n")
    (top / "run.py").chmod(0o755)
    git(top, "init", "-q", "-b", "main")
    return top


def commit_all(top):
    git(top, "add", "-A")
    git(top, "commit", "-qm", "init")


def mode(path):
    return stat.S_IMODE(path.stat().st_mode)


def test_an_executable_stays_100755_on_the_mission_branch(repo):
    commit_all(repo)
    ws = open_workspace(repo)
    assert mode(ws.path / "run.py") & 0o100
    write_atomic(ws.path / "run.py", "#!/usr/bin/env python3\nprint(2)\n")
    write_atomic(ws.path / "pkg" / "mod.py", "x = 2\n")
    ws.commit(["run.py", "pkg/mod.py"], branch="coditect/m", message="change")
    ws.cleanup()
    tree = git(repo, "ls-tree", "-r", "coditect/m")
    assert "100755 blob" in next(line for line in tree.splitlines() if line.endswith("run.py"))
    assert "100644 blob" in next(line for line in tree.splitlines() if line.endswith("mod.py"))


def test_plain_directory_keeps_644_and_755(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "a.py").write_text("a = 1\n")
    (plain / "a.py").chmod(0o644)
    (plain / "tool.py").write_text("print(1)\n")
    (plain / "tool.py").chmod(0o755)
    ws = open_workspace(plain)
    write_atomic(ws.path / "a.py", "a = 2\n")
    write_atomic(ws.path / "tool.py", "print(2)\n")
    write_atomic(ws.path / "new.py", "n = 1\n")
    ws.apply(["a.py", "tool.py", "new.py"], backup_dir=tmp_path / "backup")
    ws.cleanup()
    assert (mode(plain / "a.py"), mode(plain / "tool.py")) == (0o644, 0o755)
    assert (plain / "a.py").read_text() == "a = 2\n"
    umask = os.umask(0)
    os.umask(umask)
    assert mode(plain / "new.py") == 0o666 & ~umask


def test_a_link_to_outside_is_copied_as_a_link_and_noted(repo, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("do not read\n")
    os.symlink(str(secret), repo / "data")
    os.symlink("../../elsewhere", repo / "pkg" / "up")
    os.symlink("mod.py", repo / "pkg" / "alias.py")
    commit_all(repo)
    ws = open_workspace(repo)
    assert os.readlink(ws.path / "data") == str(secret)
    assert os.readlink(ws.path / "pkg" / "alias.py") == "mod.py"
    (note,) = ws.notes
    assert "2 symbolic link(s) point outside the project" in note
    assert "not followed" in note and "data" in note and "pkg/up" in note
    ws.cleanup()


def test_links_are_kept_in_a_plain_directory_too(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "m.py").write_text("m = 1\n")
    os.symlink("/etc/hostname", plain / "host")
    ws = open_workspace(plain)
    assert os.readlink(ws.path / "host") == "/etc/hostname"
    assert any("host" in n and "not followed" in n for n in ws.notes)
    ws.cleanup()


def test_a_changed_link_is_committed_as_a_link(repo):
    os.symlink("mod.py", repo / "pkg" / "alias.py")
    commit_all(repo)
    ws = open_workspace(repo)
    (ws.path / "pkg" / "alias.py").unlink()
    os.symlink("other.py", ws.path / "pkg" / "alias.py")
    ws.commit(["pkg/alias.py"], branch="coditect/link", message="relink")
    ws.cleanup()
    line = git(repo, "ls-tree", "coditect/link", "pkg/alias.py")
    assert line.startswith("120000 blob")
    assert git(repo, "show", "coditect/link:pkg/alias.py") == "other.py"


def test_a_project_without_python_is_refused(tmp_path):
    js = tmp_path / "js"
    (js / "src").mkdir(parents=True)
    (js / "src" / "index.js").write_text("module.exports = 1;\n")
    (js / "package.json").write_text("{}\n")
    with pytest.raises(InputError, match="unsupported project: no Python code found") as info:
        open_workspace(js)
    assert "src/index.js" in info.value.message
    assert not list(tmp_path.glob("coditect-*"))


@pytest.mark.parametrize(
    "files",
    [
        {},
        {"README.md": "# docs only"},
        {"app.js": "1", "tool/x.py": "x = 1"},
        {"web.ts": "1", "pyproject.toml": "[project]"},
    ],
)
def test_projects_with_python_or_without_code_are_accepted(tmp_path, files):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    check_python_project(tmp_path)


def test_a_long_request_gets_a_bounded_subject_and_body():
    request = "Add " + "a very long request " * 5000
    message = bounded_commit_message(f"{request}\n\nCODITECT mission m-1")
    subject, blank, *body = message.splitlines()
    assert len(subject) <= SUBJECT_MAX_CHARS and subject.endswith("...") and blank == ""
    assert len(message) < 5000
    assert "more characters not shown" in message
    assert message.rstrip().endswith("CODITECT mission m-1")


def test_a_short_request_is_left_as_it_is():
    assert bounded_commit_message("Fix median\n\nCODITECT mission m-1") == (
        "Fix median\n\nCODITECT mission m-1\n"
    )


def test_a_100kb_request_does_not_make_a_100kb_commit(repo):
    commit_all(repo)
    ws = open_workspace(repo)
    write_atomic(ws.path / "pkg" / "mod.py", "x = 3\n")
    ws.commit(["pkg/mod.py"], branch="coditect/long", message="word " * 20000)
    ws.cleanup()
    message = git(repo, "log", "-1", "--format=%B", "coditect/long")
    assert len(message) < 5000
    assert len(message.splitlines()[0]) <= SUBJECT_MAX_CHARS
