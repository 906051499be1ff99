"""Python modules a project generates at install time and git ignores, carried into a mission.

A version module written by setuptools-scm or hatch-vcs (``src/humanize/_version.py``) is
ignored by git, yet the package imports it: a copy of the project made from its commits has no
such module, and no test can import the package. A developer's checkout has it. A mission
works on a copy of the commits, so the modules are taken from the checkout it came from:

* in one process, :func:`copy_generated_modules` copies them into the mission's workspace;
* in the distributed mode, the orchestrator reads them from the repository it was given
  (:func:`read_generated_modules`: only a local path has a checkout), sends them with every
  task, and the worker writes them into its clone (:func:`write_generated_modules`), whose
  ``git clean -x`` before each task removes them again.

Only ``.py`` files are taken, and only those in a directory that holds committed Python code:
a virtual environment or ``build/`` tree is a directory git ignores as a whole and is never
listed file by file. A file the commits have is never replaced.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

__all__ = [
    "MAX_MODULE_BYTES",
    "copy_generated_modules",
    "generated_modules",
    "generated_note",
    "read_generated_modules",
    "write_generated_modules",
]

#: A generated module larger than this is not carried to distributed workers (a version module
#: is a few hundred bytes; a large ignored file is not what this is for).
MAX_MODULE_BYTES = 64 * 1024
#: At most this many modules are carried to distributed workers.
MAX_MODULES = 20


def generated_modules(checkout: Path, tree: Path) -> list[str]:
    """The ignored ``.py`` files of ``checkout`` that belong beside committed code of ``tree``.

    Args:
        checkout: A git working tree (or a folder inside one) with the generated files.
        tree: The committed files of the project (the mission's copy), laid out like ``checkout``.

    Returns:
        Their paths relative to ``checkout``, sorted; empty when ``checkout`` is not a working
        tree (a bare repository) or git cannot list it.
    """
    try:
        listing = subprocess.run(
            ["git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"],
            cwd=checkout,
            capture_output=True,
            check=False,
        )
    except OSError:
        return []
    if listing.returncode != 0:
        return []
    found: list[str] = []
    for entry in listing.stdout.decode(errors="surrogateescape").split("\0"):
        if not entry.endswith(".py") or entry.startswith("../"):
            continue
        source, target = checkout / entry, tree / entry
        if source.is_symlink() or not source.is_file() or target.exists():
            continue
        if _beside_committed_code(target):
            found.append(entry)
    return sorted(found)


def _beside_committed_code(target: Path) -> bool:
    return target.parent.is_dir() and any(p.suffix == ".py" for p in target.parent.iterdir())


def copy_generated_modules(checkout: Path, tree: Path) -> list[str]:
    """Copy the generated modules of ``checkout`` into ``tree``; their relative paths."""
    copied = generated_modules(checkout, tree)
    for entry in copied:
        shutil.copy2(checkout / entry, tree / entry)
    return copied


def read_generated_modules(checkout: Path, tree: Path) -> dict[str, str]:
    """The generated modules of ``checkout`` as text, to send to workers (path -> text).

    At most :data:`MAX_MODULES`, each at most :data:`MAX_MODULE_BYTES` and UTF-8; others are
    left out.
    """
    modules: dict[str, str] = {}
    for entry in generated_modules(checkout, tree)[:MAX_MODULES]:
        try:
            data = (checkout / entry).read_bytes()
            if len(data) <= MAX_MODULE_BYTES:
                modules[entry] = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
    return modules


def write_generated_modules(tree: Path, modules: Mapping[str, str]) -> list[str]:
    """Write ``modules`` (path -> text) into ``tree`` where they belong; their paths.

    A path that is absolute, leaves ``tree``, is not a ``.py`` file, names a file ``tree``
    already has, or is not beside committed Python code is skipped: what a worker is sent
    never replaces or adds anything else.
    """
    written: list[str] = []
    root = tree.resolve()
    for entry, text in sorted(modules.items()):
        rel = PurePosixPath(entry)
        if rel.is_absolute() or ".." in rel.parts or rel.suffix != ".py":
            continue
        target = tree.joinpath(*rel.parts)
        if not target.resolve().is_relative_to(root) or target.exists():
            continue
        if not _beside_committed_code(target):
            continue
        target.write_text(text, encoding="utf-8")
        written.append(entry)
    return written


def generated_note(paths: list[str]) -> str:
    """The report's note on the generated modules a mission was given ("" for none)."""
    if not paths:
        return ""
    shown = ", ".join(paths[:3]) + (" ..." if len(paths) > 3 else "")
    return (
        f"{len(paths)} Python file(s) that git ignores were copied from the project as they "
        f"are (generated modules its code imports, such as a version file): {shown}"
    )
