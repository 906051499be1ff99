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

File modes survive the round trip (an executable stays ``100755`` in git, ``755`` on disk), and
symbolic links are copied as links, never followed: a link that points outside the project is
kept as it is, and the report notes that it was not followed. A project with source code in
other languages but no Python file is refused (:func:`check_python_project`).

Each copy carries an owner marker (:mod:`coditect.leftovers`), so a copy left behind by a
process that was killed is removed at the next start or by ``coditect gc``.
"""

from __future__ import annotations

import difflib
import os
import shutil
import stat
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from coditect.errors import CoditectError, InputError
from coditect.generated import copy_generated_modules, generated_note
from coditect.leftovers import mark_owned

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "GitInfo",
    "Workspace",
    "bounded_commit_message",
    "check_python_project",
    "open_workspace",
]

#: git's recommended maximum length of a commit subject line.
SUBJECT_MAX_CHARS = 72
#: The request quoted in a commit body is cut after this many characters.
BODY_MAX_CHARS = 4000
#: Extensions of source files in languages other than Python. A project that has some of these
#: and not one Python file is not a project CODITECT can change (it writes and tests Python).
_OTHER_SOURCE_SUFFIXES = frozenset(
    {
        ".js", ".mjs", ".cjs", ".jsx", ".ts", ".tsx", ".go", ".rs", ".java", ".kt", ".scala",
        ".c", ".h", ".cc", ".cpp", ".hpp", ".cs", ".rb", ".php", ".swift", ".m", ".lua",
        ".pl", ".r", ".jl", ".dart", ".ex", ".exs", ".erl", ".hs", ".clj", ".elm", ".vue",
    }
)  # fmt: skip
_PYTHON_MARKERS = frozenset({"pyproject.toml", "setup.py", "setup.cfg"})

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
            # Bytes decoded as they are: reading text would turn CRLF into LF on one side only.
            new = new_path.read_bytes().decode(errors="replace") if new_path.exists() else ""
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
        return original.read_bytes().decode(errors="replace") if original.exists() else ""

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
            if src.is_symlink():
                blob = _git(
                    top, "hash-object", "-w", "--stdin", input_=os.fsencode(os.readlink(src))
                ).strip()
                _git(
                    top, "update-index", "--add", "--cacheinfo", f"120000,{blob},{target}", env=env
                )
            elif src.exists():
                blob = _git(top, "hash-object", "-w", "--stdin", input_=src.read_bytes()).strip()
                # git keeps one bit of the mode: executable by the owner or not.
                mode = "100755" if src.stat().st_mode & stat.S_IXUSR else "100644"
                _git(
                    top, "update-index", "--add", "--cacheinfo", f"{mode},{blob},{target}", env=env
                )
            else:
                _git(top, "update-index", "--force-remove", "--", target, env=env)
        tree = _git(top, "write-tree", env=env).strip()
        commit = _git(
            top,
            "commit-tree",
            tree,
            "-p",
            self.git.head,
            "-F",
            "-",
            env=env,
            input_=bounded_commit_message(message).encode(),
        ).strip()
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
            if not src.exists() and not src.is_symlink():
                dst.unlink(missing_ok=True)
                continue
            dst.parent.mkdir(parents=True, exist_ok=True)
            tmp = dst.with_name(f".{dst.name}.coditect-tmp")
            tmp.unlink(missing_ok=True)
            if src.is_symlink():
                os.symlink(os.readlink(src), tmp)
            else:
                shutil.copy2(src, tmp)
                # The user's file keeps its mode whatever the copy's mode became.
                if dst.exists() and not dst.is_symlink():
                    os.chmod(tmp, stat.S_IMODE(dst.stat().st_mode))
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
    mark_owned(tmp)
    path = tmp / "project"
    notes: list[str] = []
    try:
        if info is not None:
            archive = tmp / "head.tar"
            args = ["archive", "--format=tar", "-o", str(archive), info.head]
            if info.subdir:
                args += ["--", info.subdir]
            _git(info.toplevel, *args)
            outside: list[str] = []
            with tarfile.open(archive) as tar:
                tar.extractall(tmp / "tree", filter=_links_kept(outside, info.subdir))
            archive.unlink()
            src = tmp / "tree" / info.subdir if info.subdir else tmp / "tree"
            if not src.exists():  # a folder with no committed files
                src.mkdir(parents=True)
            src.rename(path)
            shutil.rmtree(tmp / "tree", ignore_errors=True)
            checkout = info.toplevel / info.subdir if info.subdir else info.toplevel
            generated = generated_note(copy_generated_modules(checkout, path))
            if generated:
                notes.append(generated)
            if info.dirty_files:
                notes.append(
                    f"{len(info.dirty_files)} uncommitted change(s) in the project were not "
                    "included: the mission worked from the last commit (HEAD)"
                )
        else:
            shutil.copytree(repo, path, ignore=_COPY_IGNORE, symlinks=True)
            outside = _links_outside(path)
        if outside:
            shown = ", ".join(sorted(outside)[:5]) + (" ..." if len(outside) > 5 else "")
            notes.append(
                f"{len(outside)} symbolic link(s) point outside the project and were copied as "
                f"links, not followed: {shown}"
            )
        check_python_project(path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Workspace(repo=repo, path=path, git=info, _tmp=tmp, notes=notes)


def check_python_project(path: Path) -> None:
    """Refuse a project CODITECT cannot change: source code in other languages, no Python.

    An empty project or one with only documentation is accepted (a mission may start its first
    module); a project with a Python file or a Python packaging file is accepted.

    Raises:
        InputError: The project has source files of other languages and no Python file.
    """
    other = ""
    for root, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if d not in (".git", "node_modules", ".venv", "venv")]
        for name in files:
            suffix = os.path.splitext(name)[1].lower()
            if suffix in (".py", ".pyi") or name in _PYTHON_MARKERS:
                return
            if not other and suffix in _OTHER_SOURCE_SUFFIXES:
                other = os.path.relpath(os.path.join(root, name), path)
    if other:
        raise InputError(
            f"unsupported project: no Python code found (only other languages, e.g. {other})",
            hint="CODITECT changes and tests Python projects; point --repo at one",
        )


def bounded_commit_message(message: str) -> str:
    """``message`` with a subject of at most 72 characters and a body of bounded length.

    A long first line is cut at a word boundary and given in full (up to
    :data:`BODY_MAX_CHARS`) in the body, so ``git log --oneline`` stays readable whatever the
    request was.
    """
    text = message.strip()
    first, _, rest = text.partition("\n")
    first = " ".join(first.split())
    if len(first) <= SUBJECT_MAX_CHARS:
        subject, body = first, rest.strip()
    else:
        cut = first[: SUBJECT_MAX_CHARS - 3]
        cut = cut.rsplit(" ", 1)[0] if " " in cut[20:] else cut
        subject, body = cut.rstrip() + "...", text
    if len(body) > BODY_MAX_CHARS:
        dropped = len(body) - BODY_MAX_CHARS
        body = body[:BODY_MAX_CHARS] + f"\n[... {dropped} more characters not shown]"
        tail = rest.strip().splitlines()[-1:] if rest.strip() else []
        if tail and tail[0] not in body:  # keep the trailer (the mission id) visible
            body += "\n\n" + tail[0]
    return f"{subject}\n\n{body}\n" if body else subject + "\n"


def _links_kept(
    outside: list[str], subdir: str
) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo | None]:
    """A tar filter: the ``data`` rules for files, links copied as links (never followed)."""

    def keep(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
        if member.issym():
            rel = member.name[len(subdir) + 1 :] if subdir else member.name
            if _escapes(rel, member.linkname):
                outside.append(rel)
            # "tar" rules: no absolute or escaping member *names*; the link's target is text.
            return tarfile.tar_filter(member, dest)
        return tarfile.data_filter(member, dest)

    return keep


def _escapes(name: str, target: str) -> bool:
    """Whether the symbolic link ``name`` -> ``target`` points outside its tree (lexically)."""
    if os.path.isabs(target):
        return True
    joined = os.path.normpath(os.path.join(os.path.dirname(name), target))
    return joined == ".." or joined.startswith("../")


def _links_outside(path: Path) -> list[str]:
    found: list[str] = []
    for root, dirs, files in os.walk(path):
        for name in [*dirs, *files]:
            full = os.path.join(root, name)
            if os.path.islink(full):
                rel = os.path.relpath(full, path)
                if _escapes(rel, os.readlink(full)):
                    found.append(rel)
    return found
