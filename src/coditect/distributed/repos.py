"""Repository transport without a shared disk: clone or fetch a mission branch, push onto it.

The orchestrator keeps a bare mirror of each repository (a git URL or path) and the files of
each base commit it planned on, creates the branch ``coditect/<mission-id>`` at the base
commit and pushes it. Each worker keeps its own clone
per mission in its cache directory, resets it to the branch head before a task and pushes
a commit after it. Git itself carries the files, so workers need only read/write access to
the repository, not a disk shared with the orchestrator.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import tarfile
from pathlib import Path

from coditect.errors import CoditectError, InputError
from coditect.generated import read_generated_modules
from coditect.taskqueue.deps import DEPS_DIR

__all__ = ["GitError", "RepoCache", "git", "task_trailer"]

_ENV = {
    "GIT_AUTHOR_NAME": "CODITECT",
    "GIT_AUTHOR_EMAIL": "coditect@localhost",
    "GIT_COMMITTER_NAME": "CODITECT",
    "GIT_COMMITTER_EMAIL": "coditect@localhost",
    "GIT_TERMINAL_PROMPT": "0",
}
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class GitError(CoditectError):
    """A git command failed (retryable: most failures are network or concurrency)."""

    retryable_default = True


async def git(cwd: Path | None, *args: str, timeout_s: float = 120.0) -> str:
    """Run git, return its stdout.

    Raises:
        GitError: Non-zero exit or timeout (the message has git's stderr).
    """
    proc = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        env={**os.environ, **_ENV},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise GitError(f"git {args[0]} timed out after {timeout_s:g}s") from None
    if proc.returncode != 0:
        raise GitError(f"git {' '.join(args[:2])} failed: {err.decode(errors='replace').strip()}")
    return out.decode(errors="replace")


async def _has(repo: Path, commit: str) -> bool:
    try:
        await git(repo, "cat-file", "-e", f"{commit}^{{commit}}")
    except GitError:
        return False
    return True


def _read_local_ref(repo: str, ref: str) -> str | None:
    """Resolve ``ref`` of a local repository by reading its files (no git process).

    Returns None whenever anything is unusual (worktrees, symbolic refs to refs that are not
    there, ...): the caller then asks ``git ls-remote``.
    """
    path = Path(repo)
    gitdir = path / ".git" if (path / ".git").is_dir() else path
    if not (gitdir / "HEAD").is_file():
        return None
    try:
        if ref == "HEAD":
            head = (gitdir / "HEAD").read_text().strip()
            if not head.startswith("ref: "):
                return head if re.fullmatch(r"[0-9a-f]{40}", head) else None
            ref = head[5:]
        names = (ref, f"refs/heads/{ref}", f"refs/tags/{ref}")
        for name in names:
            f = gitdir / name
            if name.startswith("refs/") and f.is_file():
                sha = f.read_text().strip()
                return sha if re.fullmatch(r"[0-9a-f]{40}", sha) else None
        packed = gitdir / "packed-refs"
        if packed.is_file():
            for line in packed.read_text().splitlines():
                sha, _, name = line.partition(" ")
                if name in names and re.fullmatch(r"[0-9a-f]{40}", sha):
                    return sha
    except OSError:
        return None
    return None


def task_trailer(mission_id: str, task_id: str) -> str:
    """The commit trailer that marks which task a commit applies."""
    return f"Coditect-Task: {mission_id}/{task_id}"


def _looks_remote(repo: str) -> bool:
    return "://" in repo or (":" in repo and "@" in repo.split(":", 1)[0])


class RepoCache:
    """Per-mission clones under ``root`` (one directory per mission)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._locks: dict[str, asyncio.Lock] = {}
        self._known: set[tuple[str, str]] = set()

    def path_for(self, mission_id: str) -> Path:
        """The clone directory of ``mission_id``."""
        return self.root / _SAFE.sub("_", mission_id)

    @staticmethod
    def check_repo(repo: str) -> str:
        """Normalise a path to absolute; URLs pass through.

        Raises:
            InputError: A local path that is not a git repository.
        """
        if _looks_remote(repo):
            return repo
        path = Path(repo).expanduser().resolve()
        if not (path / ".git").exists() and not (path / "HEAD").is_file():
            raise InputError(
                f"{path} is not a git repository",
                hint="distributed mode moves code through git: `git init && git commit` first",
            )
        return str(path)

    async def resolve(self, repo: str, base_ref: str = "") -> str:
        """The commit ``base_ref`` (default: HEAD) names in ``repo`` right now.

        Raises:
            InputError: The repository cannot be read, or has no such ref.
        """
        if re.fullmatch(r"[0-9a-f]{40}", base_ref):
            return base_ref
        ref = base_ref or "HEAD"
        local = _read_local_ref(repo, ref) if not _looks_remote(repo) else None
        if local is not None:
            return local
        try:
            out = await git(None, "ls-remote", repo, ref, timeout_s=60)
        except GitError as exc:
            raise InputError(f"cannot read {repo}: {exc.message}") from exc
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
                return sha
        if not base_ref and not out.strip():
            raise InputError(f"{repo} has no commit yet", hint="commit something first")
        raise InputError(
            f"no ref {ref!r} in {repo}", hint="--base-ref takes a branch, tag or commit"
        )

    async def mirror(self, repo: str, commit: str) -> Path:
        """A bare mirror of ``repo`` (one per repository) that holds ``commit``."""
        key = hashlib.sha256(repo.encode()).hexdigest()[:16]
        dest = self.root / "mirrors" / key
        if (key, commit) in self._known:  # objects never leave a mirror
            return dest
        async with self._lock(dest):
            if not (dest / "HEAD").exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                tmp = dest.with_name(f"{key}.tmp{os.getpid()}")
                shutil.rmtree(tmp, ignore_errors=True)
                try:
                    await git(None, "clone", "-q", "--bare", repo, str(tmp))
                except GitError as exc:
                    raise InputError(f"cannot clone {repo}: {exc.message}") from exc
                tmp.rename(dest)
            if not await _has(dest, commit):
                await git(dest, "fetch", "-q", repo, "+refs/heads/*:refs/heads/*")
                if not await _has(dest, commit):
                    await git(dest, "fetch", "-q", repo, commit)
        self._known.add((key, commit))
        return dest

    async def tree(self, mirror: Path, commit: str) -> Path:
        """The files of ``commit``, extracted once into a read-only cache directory."""
        dest = self.root / "trees" / commit
        if dest.exists():
            return dest
        tmp = dest.with_name(f"{commit}.tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        archive = tmp.with_suffix(".tar")
        await git(mirror, "archive", "--format=tar", "-o", str(archive), commit)
        with tarfile.open(archive) as tar:
            tar.extractall(tmp, filter="data")
        archive.unlink()
        try:
            tmp.rename(dest)
        except OSError:  # another request extracted it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
        return dest

    @staticmethod
    async def generated(repo: str, tree: Path) -> dict[str, str]:
        """The modules ``repo``'s checkout generated and git ignores (path -> text).

        Only a local repository with a working tree has any (:mod:`coditect.generated`);
        ``tree`` holds the mission's committed files.
        """
        if _looks_remote(repo):
            return {}
        return await asyncio.to_thread(read_generated_modules, Path(repo), tree)

    async def push_branch(self, mirror: Path, repo: str, commit: str, branch: str) -> None:
        """Create ``branch`` at ``commit`` in ``repo`` (fails if the branch exists)."""
        await git(mirror, "push", "-q", repo, f"{commit}:refs/heads/{branch}")

    async def fetch_branch(self, mirror: Path, repo: str, branch: str, ref: str) -> str:
        """Fetch ``branch`` of ``repo`` into ``ref`` of the mirror; its head commit."""
        async with self._lock(mirror):
            await git(mirror, "fetch", "-q", repo, f"+refs/heads/{branch}:{ref}")
        return (await git(mirror, "rev-parse", ref)).strip()

    def _lock(self, path: Path) -> asyncio.Lock:
        return self._locks.setdefault(str(path), asyncio.Lock())

    async def checkout(self, repo: str, mission_id: str, branch: str) -> tuple[Path, str]:
        """A clean working tree at the head of ``branch``: (path, head commit)."""
        dest = self.path_for(mission_id)
        if not (dest / ".git").exists():
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            await git(None, "clone", "-q", "--branch", branch, repo, str(dest))
        else:
            await git(
                dest, "fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}"
            )
            await git(dest, "checkout", "-q", "-B", branch, f"origin/{branch}")
            await git(dest, "reset", "-q", "--hard", f"origin/{branch}")
            # The project's dependencies installed for its tests are kept (taskqueue/deps.py).
            await git(dest, "clean", "-qfdx", "-e", f"/{DEPS_DIR}/")
        head = (await git(dest, "rev-parse", "HEAD")).strip()
        return dest, head

    async def remote_head(self, path: Path, branch: str) -> str:
        """The head of ``branch`` in the origin repository right now."""
        out = await git(path, "ls-remote", "origin", f"refs/heads/{branch}")
        return out.split()[0] if out.strip() else ""

    async def commit(self, path: Path, files: list[str], message: str) -> str:
        """Commit ``files`` (added, changed or deleted) and return the new head."""
        await git(path, "add", "-A", "--", *files)
        await git(path, "commit", "-q", "--no-verify", "-m", message)
        return (await git(path, "rev-parse", "HEAD")).strip()

    async def commit_message(self, path: Path, commit: str) -> str:
        """The message of ``commit`` (fetching the branch first if needed)."""
        return await git(path, "log", "-1", "--format=%B", commit)

    async def push(self, path: Path, branch: str) -> None:
        """Push HEAD onto ``branch`` (fast-forward only: a moved branch fails the push)."""
        await git(path, "push", "-q", "origin", f"HEAD:refs/heads/{branch}")

    def remove(self, mission_id: str) -> None:
        """Delete a mission's clone."""
        shutil.rmtree(self.path_for(mission_id), ignore_errors=True)
