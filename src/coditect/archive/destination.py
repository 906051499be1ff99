"""Where archive files go: a local directory (``file:///path``) or S3 (``s3://bucket/prefix``).

A file is written *durably* before anything is acknowledged: locally to a hidden temporary file
that is fsynced and renamed over the final name (then the directory is fsynced); on S3 the object
is complete once its PUT returned. Readers (pyarrow datasets, DuckDB ``*.parquet`` globs) skip
the hidden temporary files.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
from pyarrow import fs as pafs
from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from coditect.archive.errors import ArchiveError
from coditect.errors import ConfigError

__all__ = [
    "ArchiveSettings",
    "Destination",
    "RetryPolicy",
    "open_destination",
    "write_with_retry",
]

#: Parquet compression of archive files.
COMPRESSION = "zstd"


class ArchiveSettings(BaseSettings):
    """Settings of the archive's S3 destination and event source, from the environment.

    Attributes:
        s3_endpoint: ``http(s)://host:port`` of an S3-compatible server (MinIO, SeaweedFS...);
            empty for AWS S3 itself (``CODITECT_S3_ENDPOINT``).
        s3_region: Region (``CODITECT_S3_REGION``; ``us-east-1`` if empty).
        s3_access_key: ``CODITECT_S3_ACCESS_KEY`` or ``AWS_ACCESS_KEY_ID``.
        s3_secret_key: ``CODITECT_S3_SECRET_KEY`` or ``AWS_SECRET_ACCESS_KEY``.
        nats_url: ``CODITECT_NATS_URL``: read events from JetStream instead of SQLite.
    """

    model_config = SettingsConfigDict(env_prefix="CODITECT_", extra="ignore", populate_by_name=True)

    s3_endpoint: str = ""
    s3_region: str = ""
    s3_access_key: str = Field(
        default="", validation_alias=AliasChoices("CODITECT_S3_ACCESS_KEY", "AWS_ACCESS_KEY_ID")
    )
    s3_secret_key: str = Field(
        default="",
        validation_alias=AliasChoices("CODITECT_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"),
    )
    nats_url: str = ""


class RetryPolicy(BaseModel):
    """How a failed write is retried: exponential backoff with jitter.

    Attributes:
        attempts: Tries before giving up (the batch then stays unacknowledged).
        initial_s: Wait after the first failure; doubled after each further one.
        max_s: Upper bound of one wait.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    attempts: int = Field(default=8, ge=1)
    initial_s: float = Field(default=0.2, ge=0)
    max_s: float = Field(default=10.0, ge=0)


@dataclass(frozen=True)
class Destination:
    """An archive root on some filesystem.

    Attributes:
        url: The URL it was opened from.
        filesystem: The pyarrow filesystem.
        root: The root path inside ``filesystem`` (``bucket/prefix`` on S3).
        local: True for a local directory (written with fsync + rename).
    """

    url: str
    filesystem: pafs.FileSystem
    root: str
    local: bool
    _buckets: set[str] = field(default_factory=set, repr=False, compare=False)

    def path(self, relative: str) -> str:
        """The filesystem path of ``relative`` below the root."""
        return f"{self.root.rstrip('/')}/{relative}" if self.root else relative

    def write(self, relative: str, table: pa.Table) -> int:
        """Write ``table`` as Parquet at ``relative`` durably; return the file's size in bytes.

        Raises:
            OSError: The write failed (nothing is left under the final name on a local disk).
        """
        if self.local:
            return _write_local(Path(self.path(relative)), table)
        return self._write_s3(relative, table)

    def _write_s3(self, relative: str, table: pa.Table) -> int:
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink, compression=COMPRESSION)
        data = sink.getvalue()
        bucket = self.root.split("/", 1)[0]
        if bucket not in self._buckets:
            if self.filesystem.get_file_info(bucket).type == pafs.FileType.NotFound:
                self.filesystem.create_dir(bucket)
            self._buckets.add(bucket)
        # The object exists (complete) once close() returned: that is the completed PUT.
        with self.filesystem.open_output_stream(self.path(relative)) as out:
            out.write(data)
        return int(data.size)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_local(final: Path, table: pa.Table) -> int:
    created = [p for p in (final.parent, final.parent.parent) if not p.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("wb") as f:
            pq.write_table(table, f, compression=COMPRESSION)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(final.parent)
    for directory in created:  # a new directory's entry lives in its parent
        _fsync_dir(directory.parent)
    return final.stat().st_size


def _s3_filesystem(settings: ArchiveSettings) -> pafs.S3FileSystem:
    endpoint = settings.s3_endpoint
    kwargs: dict[str, object] = {}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        kwargs["endpoint_override"] = parsed.netloc
        kwargs["scheme"] = parsed.scheme
    if settings.s3_access_key:
        kwargs["access_key"] = settings.s3_access_key
        kwargs["secret_key"] = settings.s3_secret_key
    # One try per call with short timeouts: write_with_retry owns the backoff.
    return pafs.S3FileSystem(
        region=settings.s3_region or "us-east-1",
        connect_timeout=2.0,
        request_timeout=20.0,
        allow_bucket_creation=True,
        retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=1),
        **kwargs,
    )


def open_destination(url: str, settings: ArchiveSettings | None = None) -> Destination:
    """Open ``file:///path`` (or a plain path) or ``s3://bucket/prefix``.

    Raises:
        ConfigError: The URL's scheme is not supported or the S3 URL names no bucket.
    """
    parsed = urlparse(url)
    if parsed.scheme in ("", "file"):
        local_root = Path(parsed.path if parsed.scheme else url).expanduser().resolve()
        return Destination(
            url=url, filesystem=pafs.LocalFileSystem(), root=str(local_root), local=True
        )
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise ConfigError(f"no bucket in {url!r}", hint="use s3://bucket/prefix")
        root = f"{parsed.netloc}/{parsed.path.strip('/')}".rstrip("/")
        fs = _s3_filesystem(settings or ArchiveSettings())
        return Destination(url=url, filesystem=fs, root=root, local=False)
    raise ConfigError(
        f"unsupported archive URL {url!r}", hint="use file:///path or s3://bucket/prefix"
    )


async def write_with_retry(
    dest: Destination,
    relative: str,
    table: pa.Table,
    *,
    policy: RetryPolicy,
    on_retry: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Write one file, retrying failures with exponential backoff; return its size in bytes.

    Args:
        dest: The destination.
        relative: Path below the destination's root.
        table: Rows to write.
        policy: Tries and backoff.
        on_retry: Awaited before each wait (e.g. to tell JetStream the batch is still in work).

    Raises:
        ArchiveError: Every try failed (retryable).
    """
    delay_s = policy.initial_s
    last: Exception | None = None
    for attempt in range(1, policy.attempts + 1):
        try:
            return await asyncio.to_thread(dest.write, relative, table)
        except OSError as exc:
            last = exc
        if attempt < policy.attempts:
            if on_retry is not None:
                await on_retry()
            await asyncio.sleep(delay_s * (0.5 + random.random() / 2))
            delay_s = min(delay_s * 2, policy.max_s)
    raise ArchiveError(
        f"cannot write {dest.path(relative)} after {policy.attempts} tries: {last}",
        hint=f"is the archive destination {dest.url} reachable and writable?",
    ) from last
