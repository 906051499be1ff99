import subprocess

import pytest

from coditect.errors import InputError
from coditect.workspace import open_workspace


def git(cwd, *args):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def repo(tmp_path):
    top = tmp_path / "repo"
    (top / "proj" / "pkg").mkdir(parents=True)
    (top / "proj" / "pkg" / "mod.py").write_text("x = 1\n")
    (top / "other.txt").write_text("keep\n")
    git(top, "init", "-q", "-b", "main")
    git(top, "-c", "user.email=a@b", "-c", "user.name=A", "add", "-A")
    git(top, "-c", "user.email=a@b", "-c", "user.name=A", "commit", "-qm", "init")
    return top


def test_git_subdir_commit_lands_on_a_branch_and_leaves_the_tree_alone(repo):
    ws = open_workspace(repo / "proj")
    assert ws.git is not None and ws.git.subdir == "proj" and ws.notes == []
    assert (ws.path / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert not (ws.path / "other.txt").exists()
    (ws.path / "pkg" / "mod.py").write_text("x = 2\n")
    (ws.path / "pkg" / "new.py").write_text("y = 1\n")
    changed = ["pkg/mod.py", "pkg/new.py"]
    diff = ws.diff(changed)
    assert "-x = 1" in diff and "+x = 2" in diff and "+y = 1" in diff
    head_before = git(repo, "rev-parse", "HEAD")
    commit = ws.commit(changed, branch="coditect/m-1", message="change")
    ws.cleanup()
    assert not ws.path.exists()
    assert git(repo, "rev-parse", "HEAD") == head_before
    assert git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "proj" / "pkg" / "mod.py").read_text() == "x = 1\n"
    assert git(repo, "show", "coditect/m-1:proj/pkg/mod.py") == "x = 2\n"
    assert git(repo, "show", "coditect/m-1:other.txt") == "keep\n"
    assert git(repo, "rev-parse", "coditect/m-1").strip() == commit
    with pytest.raises(Exception, match="already exists"):
        ws.commit(changed, branch="coditect/m-1", message="again")


def test_deleted_files_are_removed_in_the_commit(repo):
    ws = open_workspace(repo)
    (ws.path / "other.txt").unlink()
    ws.commit(["other.txt"], branch="coditect/del", message="rm")
    assert "other.txt" not in git(repo, "ls-tree", "-r", "--name-only", "coditect/del")
    ws.cleanup()


def test_dirty_tree_is_noted_and_not_included(repo):
    (repo / "proj" / "pkg" / "mod.py").write_text("x = 'dirty'\n")
    ws = open_workspace(repo / "proj")
    assert "uncommitted" in ws.notes[0]
    assert (ws.path / "pkg" / "mod.py").read_text() == "x = 1\n"
    ws.cleanup()
    assert (repo / "proj" / "pkg" / "mod.py").read_text() == "x = 'dirty'\n"


def test_the_diff_of_a_crlf_file_shows_only_what_changed(repo, tmp_path):
    """tabulate 0.9's ``version.py`` has CRLF endings: the report showed every line changed."""
    crlf = b"a = 1\r\nb = 2\r\n"
    for project in (repo / "proj", tmp_path / "plain"):
        project.mkdir(exist_ok=True)
        (project / "v.py").write_bytes(crlf)
    git(repo, "add", "proj/v.py")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=A", "commit", "-qm", "v")
    for project in (repo / "proj", tmp_path / "plain"):
        ws = open_workspace(project)
        (ws.path / "v.py").write_bytes(crlf + b"c = 3\r\n")
        diff = ws.diff(["v.py"])
        assert "+c = 3" in diff and "-a = 1" not in diff, diff
        ws.cleanup()


def test_plain_directory_applies_with_backup(tmp_path):
    proj = tmp_path / "plain"
    proj.mkdir()
    (proj / "a.py").write_text("a = 1\n")
    (proj / "__pycache__").mkdir()
    ws = open_workspace(proj)
    assert ws.git is None and not (ws.path / "__pycache__").exists()
    (ws.path / "a.py").write_text("a = 2\n")
    (ws.path / "b.py").write_text("b = 1\n")
    assert "+a = 2" in ws.diff(["a.py"])
    ws.apply(["a.py", "b.py"], backup_dir=tmp_path / "backup")
    assert (proj / "a.py").read_text() == "a = 2\n" and (proj / "b.py").read_text() == "b = 1\n"
    assert (tmp_path / "backup" / "a.py").read_text() == "a = 1\n"
    ws.cleanup()


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda p: None, "does not exist"),
        (lambda p: p.write_text("x"), "not a directory"),
    ],
)
def test_bad_repositories(tmp_path, setup, message):
    path = tmp_path / "target"
    setup(path)
    with pytest.raises(InputError, match=message):
        open_workspace(path)


def test_git_repo_without_commits_is_refused(tmp_path):
    git(tmp_path, "init", "-q")
    with pytest.raises(InputError, match="without any commit"):
        open_workspace(tmp_path)


def test_generated_modules_git_ignores_are_copied_beside_the_committed_code(repo):
    """A version file written at install time (setuptools-scm, hatch-vcs) that the package imports."""
    proj = repo / "proj"
    (proj / ".gitignore").write_text("pkg/_version.py\n.venv/\nbuild/\n*.log\n")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=A", "add", "-A")
    git(repo, "-c", "user.email=a@b", "-c", "user.name=A", "commit", "-qm", "ignore")
    (proj / "pkg" / "_version.py").write_text("__version__ = '1.2.3'\n")
    for rel in (".venv/lib/site.py", "build/lib/pkg/mod.py", "run.log"):
        (proj / rel).parent.mkdir(parents=True, exist_ok=True)
        (proj / rel).write_text("ignored\n")
    ws = open_workspace(proj)
    assert (ws.path / "pkg" / "_version.py").read_text() == "__version__ = '1.2.3'\n"
    for rel in (".venv/lib/site.py", "build/lib/pkg/mod.py", "run.log"):
        assert not (ws.path / rel).exists()
    assert ws.notes == [
        "1 Python file(s) that git ignores were copied from the project as they are (generated "
        "modules its code imports, such as a version file): pkg/_version.py"
    ]
    (ws.path / "pkg" / "mod.py").write_text("x = 2\n")
    ws.commit(["pkg/mod.py"], branch="coditect/gen", message="change")
    assert "_version.py" not in git(repo, "ls-tree", "-r", "--name-only", "coditect/gen")
    ws.cleanup()
