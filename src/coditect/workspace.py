"""Workspaces: where a mission works, and how its result reaches the user without losing anything.

A mission never edits the user's files while it runs. It works in a private copy:

* **git repository** (the project is a git work tree or a folder inside one): the copy is the
  project as committed at ``HEAD`` (``git archive``). On success the change is committed on a new
  branch ``coditect/<mission-id>`` with git plumbing (a private index, ``commit-tree``,
  ``update-ref``), so the user's branch, index and working tree are left exactly as they were.
  Uncommitted changes in the project are not seen by the mission; the report says so.
* **plain directory**: the copy is a file copy. On success the changed files are written back
  atomically, and the originals are saved under the mission's backup directory first.

On failure or Ctrl-C the copy is deleted and nothing of the user's changes.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from coditect.errors import CoditectError, InputError

__all__ = ["GitInfo", "Workspace", "open_workspace"]

_COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".venv",
    "venv",
    "node_modules",
    ".coditect",
    ".mypy_cache",
    ".ruff_cache",
)
_GIT_ENV_FALLBACK = {
    "GIT_AUTHOR_NAME": "CODITECT",
    "GIT_AUTHOR_EMAIL": "coditect@localhost",
    "GIT_COMMITTER_NAME": "CODITECT",
    "GIT_COMMITTER_EMAIL": "coditect@localhost",
}


def _git(
    cwd: Path, *args: str, env: dict[str, str] | None = None, input_: bytes | None = None
) -> str:
    proc = subprocess.run(
        ["git", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        input=input_,
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise CoditectError(f"git {args[0]} failed: {proc.stderr.decode(errors='replace').strip()}")
    return proc.stdout.decode(errors="replace")


@dataclass(frozen=True)
class GitInfo:
    """Where the project sits in its git repository."""

    toplevel: Path
    subdir: str  # POSIX path of the project inside the repository ("" for the top)
    head: str
    branch: str
    dirty_files: tuple[str, ...]


def _git_info(repo: Path) -> GitInfo | None:
    if shutil.which("git") is None:
        return None
    probe = subprocess.run(
        ["git", "rev-parse", "--show-toplevel"], cwd=repo, capture_output=True, check=False
    )
    if probe.returncode != 0:
        return None
    top = Path(probe.stdout.decode().strip()).resolve()
    head = subprocess.run(
        ["git", "rev-parse", "--verify", "-q", "HEAD"], cwd=repo, capture_output=True, check=False
    )
    if head.returncode != 0:
        raise InputError(
            f"{repo} is a git repository without any commit",
            hint="commit your files first (git add -A && git commit -m initial)",
        )
    subdir = repo.resolve().relative_to(top).as_posix()
    subdir = "" if subdir == "." else subdir
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    status = _git(top, "status", "--porcelain", "--", subdir or ".")
    dirty = tuple(line[3:] for line in status.splitlines() if line.strip())
    return GitInfo(
        toplevel=top,
        subdir=subdir,
        head=head.stdout.decode().strip(),
        branch=branch,
        dirty_files=dirty,
    )


@dataclass
class Workspace:
    """A private copy of the project that a mission works in.

    Attributes:
        repo: The user's project directory.
        path: The private copy (the agents' working directory).
        git: Git details when the project is in a git repository.
        notes: Messages for the report (e.g. uncommitted changes not included).
    """

    repo: Path
    path: Path
    git: GitInfo | None
    _tmp: Path
    notes: list[str] = field(default_factory=list)

    def diff(self, changed: list[str]) -> str:
        """A unified diff of ``changed`` (project-relative paths) between the user's project and the copy."""
        chunks: list[str] = []
        for rel in sorted(changed):
            old = self._original_text(rel)
            new_path = self.path / rel
            new = new_path.read_text(errors="replace") if new_path.exists() else ""
            chunks.extend(
                difflib.unified_diff(
                    old.splitlines(keepends=True),
                    new.splitlines(keepends=True),
                    fromfile=f"a/{rel}" if old or not new else "/dev/null",
                    tofile=f"b/{rel}" if new_path.exists() else "/dev/null",
                )
            )
        return "".join(c if c.endswith("\n") else c + "\n" for c in chunks)

    def _original_text(self, rel: str) -> str:
        if self.git is not None:
            spec = f"{self.git.head}:{self._repo_path(rel)}"
            proc = subprocess.run(
                ["git", "show", spec], cwd=self.git.toplevel, capture_output=True, check=False
            )
            return proc.stdout.decode(errors="replace") if proc.returncode == 0 else ""
        original = self.repo / rel
        return original.read_text(errors="replace") if original.exists() else ""

    def _repo_path(self, rel: str) -> str:
        assert self.git is not None
        return f"{self.git.subdir}/{rel}" if self.git.subdir else rel

    def commit(self, changed: list[str], *, branch: str, message: str) -> str:
        """Commit ``changed`` on a new ``branch`` from HEAD, leaving the user's tree untouched.

        Returns:
            The new commit's id.
        """
        assert self.git is not None
        top = self.git.toplevel
        if _git(top, "branch", "--list", branch).strip():
            raise CoditectError(f"branch {branch} already exists")
        env = {} if _git_ok(top, "config", "user.email") else dict(_GIT_ENV_FALLBACK)
        index = self._tmp / "index"
        env["GIT_INDEX_FILE"] = str(index)
        _git(top, "read-tree", self.git.head, env=env)
        for rel in changed:
            target = self._repo_path(rel)
            src = self.path / rel
            if src.exists():
                blob = _git(top, "hash-object", "-w", "--stdin", input_=src.read_bytes()).strip()
                mode = "100755" if os.access(src, os.X_OK) else "100644"
                _git(
                    top, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{target}", env=env
                )
            else:
                _git(top, "update-index", "--force-remove", "--", target, env=env)
        tree = _git(top, "write-tree", env=env).strip()
        commit = _git(top, "commit-tree", tree, "-p", self.git.head, "-m", message, env=env).strip()
        _git(top, "update-ref", f"refs/heads/{branch}", commit, "")
        return commit

    def apply(self, changed: list[str], *, backup_dir: Path) -> None:
        """Write ``changed`` back into a plain directory, atomically per file, after a backup."""
        backup_dir.mkdir(parents=True, exist_ok=True)
        for rel in changed:
            original = self.repo / rel
            if original.exists():
                (backup_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(original, backup_dir / rel)
        for rel in changed:
            src, dst = self.path / rel, self.repo / rel
            if not src.exists():
                dst.unlink(missing_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.coditect-tmp")
            shutil.copy2(src, tmp)
            os.replace(tmp, dst)

    def cleanup(self) -> None:
        """Delete the private copy."""
        shutil.rmtree(self._tmp, ignore_errors=True)


def _git_ok(cwd: Path, *args: str) -> bool:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, check=False).returncode == 0


def open_workspace(repo: Path, *, tmp_root: Path | None = None) -> Workspace:
    """Validate ``repo`` and make the mission's private copy of it.

    Raises:
        InputError: The repository does not exist, is not a directory, or has no commit.
    """
    repo = repo.expanduser()
    if not repo.exists():
        raise InputError(f"repository {repo} does not exist", hint="check the --repo path")
    if not repo.is_dir():
        raise InputError(f"repository {repo} is not a directory", hint="pass the project folder")
    repo = repo.resolve()
    info = _git_info(repo)
    tmp = Path(tempfile.mkdtemp(prefix="coditect-", dir=tmp_root))
    path = tmp / "project"
    notes: list[str] = []
    try:
        if info is not None:
            archive = tmp / "head.tar"
            args = ["archive", "--format=tar", "-o", str(archive), info.head]
            if info.subdir:
                args += ["--", info.subdir]
            _git(info.toplevel, *args)
            with tarfile.open(archive) as tar:
                tar.extractall(tmp / "tree", filter="data")
            archive.unlink()
            src = tmp / "tree" / info.subdir if info.subdir else tmp / "tree"
            if not src.exists():  # a folder with no committed files
                src.mkdir(parents=True)
            src.rename(path)
            shutil.rmtree(tmp / "tree", ignore_errors=True)
            if info.dirty_files:
                notes.append(
                    f"{len(info.dirty_files)} uncommitted change(s) in the project were not "
                    "included: the mission worked from the last commit (HEAD)"
                )
        else:
            shutil.copytree(repo, path, ignore=_COPY_IGNORE, symlinks=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Workspace(repo=repo, path=path, git=info, _tmp=tmp, notes=notes)
