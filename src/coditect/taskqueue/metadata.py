"""The project's own distribution metadata, for a package that reads its version from it.

Many packages set ``__version__ = importlib.metadata.version(__name__)`` (humanize 4.9) or ask
``pkg_resources`` when they are imported. Installed, they find their ``.dist-info``; run from a
checkout, as a mission's tests are, there is none, the import raises
``PackageNotFoundError``, and not one test can run (humanize 4.9.0: 0 tests, 4 errors). An
editable install would write the metadata, but installing runs the project's build backend, its
own code, outside the sandbox. CODITECT writes only what ``importlib.metadata`` reads instead:
``META_DIR/<name>-<version>.dist-info/METADATA`` with the project's name and version, and the
test command puts :data:`META_DIR` on ``sys.path``
(:meth:`coditect.taskqueue.testsetup.TestSetup.options`).

Only for a project whose code uses ``importlib.metadata``, ``importlib_metadata`` or
``pkg_resources``, and whose distribution the interpreter that runs the tests does not have
installed (an installed one answers for itself, with its entry points). The version is the
static ``[project] version``, else a literal ``[metadata] version`` of ``setup.cfg``, else
the ``Version`` of the sdist's ``PKG-INFO``, else ``0``: a version computed from git tags at build
time (setuptools-scm) exists nowhere in a checkout.
"""

from __future__ import annotations

import configparser
import re
import shutil
import tomllib
from collections.abc import Callable, Iterable
from email.parser import HeaderParser
from pathlib import Path, PurePosixPath

from packaging.utils import canonicalize_name

__all__ = ["META_DIR", "needs_metadata", "project_field", "project_version", "write_metadata"]

#: Where the project's metadata is written, relative to the workspace (never committed).
META_DIR = ".coditect/meta"
_READS_METADATA = re.compile(r"\b(importlib\.metadata|importlib_metadata|pkg_resources)\b")
_TESTS = {"tests", "test", "testing"}


def needs_metadata(files: Iterable[str], read: Callable[[str], str]) -> bool:
    """Whether the project's own (non-test) code reads distribution metadata."""
    for path in sorted(files):
        parts = PurePosixPath(path).parts
        name = parts[-1]
        if not path.endswith(".py") or name.startswith("test_") or name == "conftest.py":
            continue
        if name == "setup.py" or set(parts[:-1]) & _TESTS:
            continue
        if _READS_METADATA.search(read(path)):
            return True
    return False


def project_field(files: Iterable[str], read: Callable[[str], str], field: str) -> str:
    """The project's ``name`` or ``version`` as its checkout declares it ("" if it does not).

    From ``[project]`` of ``pyproject.toml``, else a literal ``[metadata]`` value of
    ``setup.cfg`` (not ``attr: pkg.__version__`` or ``file: VERSION``), else an sdist's
    ``PKG-INFO`` (a project configured only by ``setup.py`` code).
    """
    names = set(files)
    if "pyproject.toml" in names:
        try:
            project = tomllib.loads(read("pyproject.toml")).get("project")
        except tomllib.TOMLDecodeError:
            project = None
        if isinstance(project, dict) and isinstance(project.get(field), str):
            return str(project[field])
    if "setup.cfg" in names:
        parser = configparser.ConfigParser(interpolation=None)
        try:
            parser.read_string(read("setup.cfg"))
            value = parser.get("metadata", field, fallback="").strip()
        except configparser.Error:
            value = ""
        if value and ":" not in value:
            return value
    if "PKG-INFO" in names:
        return str(HeaderParser().parsestr(read("PKG-INFO")).get(field.capitalize()) or "").strip()
    return ""


def project_version(files: Iterable[str], read: Callable[[str], str]) -> str:
    """The project's version as its checkout states it (``0`` when it does not)."""
    return project_field(files, read, "version") or "0"


def write_metadata(workspace: Path, name: str, version: str) -> Path:
    """Write ``name``'s metadata into ``workspace / META_DIR`` (replacing any); its directory."""
    target = workspace / META_DIR
    shutil.rmtree(target, ignore_errors=True)
    stem = canonicalize_name(name).replace("-", "_")
    safe_version = re.sub(r"[^A-Za-z0-9.+!_]", "_", version) or "0"
    info = target / f"{stem}-{safe_version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    return info
