"""A PostgreSQL database for tests: ``postgres_url`` (session-scoped, a fresh database).

Where the server comes from, in order:

1. ``CODITECT_TEST_POSTGRES_URL`` (a server URL; a database ``coditect_test_<random>`` is made on it);
2. a server already listening on 127.0.0.1:5432 that accepts the ``postgres`` user without a password;
3. a private instance made with ``initdb`` + ``pg_ctl`` on a free port, when the binaries exist
   (Debian's postgresql package puts them in /usr/lib/postgresql/<version>/bin).

Otherwise the tests that need it are skipped, or fail under ``CI=true`` /
``CODITECT_REQUIRE_SERVERS=1``. The returned URL uses the psycopg 3 driver
(``postgresql+psycopg://...``); the database is dropped at the end of the session.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

__all__ = ["fresh_postgres_url", "postgres_database", "postgres_url"]

_START_TIMEOUT_S = 30.0


def _fail_or_skip(msg: str) -> None:
    if os.environ.get("CI", "").lower() == "true" or os.environ.get("CODITECT_REQUIRE_SERVERS"):
        pytest.fail(msg)
    pytest.skip(msg)


def _plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def _with_db(url: str, db: str) -> str:
    base = _plain(url).rsplit("/", 1)[0] if _plain(url).count("/") > 2 else _plain(url)
    return f"{base}/{db}"


def _try_connect(url: str) -> bool:
    try:
        import psycopg
    except ImportError:
        return False
    try:
        with psycopg.connect(_plain(url), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _create_db(server_url: str) -> tuple[str, str]:
    import psycopg

    name = "coditect_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(
        _with_db(server_url, "postgres"), autocommit=True, connect_timeout=5
    ) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, _with_db(server_url, name)


def _drop_db(server_url: str, name: str) -> None:
    import psycopg

    with contextlib.suppress(psycopg.Error):
        with psycopg.connect(
            _with_db(server_url, "postgres"), autocommit=True, connect_timeout=5
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _pg_bin() -> Path | None:
    for cand in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _private_server(bindir: Path) -> Iterator[str]:
    workdir = Path(tempfile.mkdtemp(prefix="coditect-pg-"))
    data = workdir / "data"
    run_as: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: use an unprivileged user
        os.chmod(workdir, 0o777)
        run_as = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    port = _free_port()
    env = {**os.environ, "LC_ALL": "C"}
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        check=True, capture_output=True, env=env, timeout=120,
    )  # fmt: skip
    log = workdir / "pg.log"
    opts = f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(log), "-o", opts, "-w", "-t", "30", "start"],
        check=True, capture_output=True, env=env, timeout=60,
    )  # fmt: skip
    try:
        url = f"postgresql://postgres@127.0.0.1:{port}"
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not _try_connect(_with_db(url, "postgres")):
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True, env=env, timeout=60, check=False,
        )  # fmt: skip
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def postgres_database(missing: Callable[[str], None] = _fail_or_skip) -> Iterator[str]:
    """``postgresql+psycopg://.../<fresh database>``, dropped at the end of the block.

    Args:
        missing: Called with the reason when no server can be found (skips or fails a test;
            bench scripts exit).
    """
    try:
        import psycopg  # noqa: F401
    except ImportError:
        missing("psycopg is not installed: pip install 'psycopg[binary]'")
    with contextlib.ExitStack() as stack:
        server = os.environ.get("CODITECT_TEST_POSTGRES_URL", "")
        if server and not _try_connect(_with_db(server, "postgres")):
            missing(f"CODITECT_TEST_POSTGRES_URL={server} is not reachable")
        if not server and _try_connect("postgresql://postgres@127.0.0.1:5432/postgres"):
            server = "postgresql://postgres@127.0.0.1:5432"
        if not server:
            bindir = _pg_bin()
            if bindir is None:
                missing(
                    "no PostgreSQL: apt-get install postgresql, or set CODITECT_TEST_POSTGRES_URL"
                )
            assert bindir is not None
            server = stack.enter_context(_private_server(bindir))
        name, url = _create_db(server)
        try:
            yield url.replace("postgresql://", "postgresql+psycopg://", 1)
        finally:
            _drop_db(server, name)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """``postgresql+psycopg://.../<fresh database>`` on a reachable or private PostgreSQL."""
    with postgres_database() as url:
        yield url


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """A database of this test only, on the session's PostgreSQL server (dropped after it)."""
    server = _plain(postgres_url)
    name, url = _create_db(server)
    try:
        yield url.replace("postgresql://", "postgresql+psycopg://", 1)
    finally:
        _drop_db(server, name)
