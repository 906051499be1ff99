"""Schema migrations of the CODITECT state database (Alembic; scripts in ``state/migrations``).

One migration history covers every table CODITECT keeps in its state database -- ``missions``,
``events`` and ``file_index`` (:mod:`coditect.state.models`), ``llm_calls`` (the LLM ledger) and
``archive_cursors`` (the embedded archiver) -- with one ``alembic_version`` row. The stores call
:func:`ensure_schema` when they open; operators can run :func:`upgrade_schema` explicitly
(``coditect db upgrade``) and turn the automatic upgrade off with ``CODITECT_DB_AUTO_MIGRATE=false``.

Cases :func:`ensure_schema` tells apart:

* at the newest revision -> nothing to do (one cheap query, no lock);
* empty database -> created at the newest revision;
* tables made by an older CODITECT's ``create_all`` (no ``alembic_version``) -> their columns are
  checked against the baseline, missing baseline tables are added, then the later revisions run;
* a revision this CODITECT does not know (the database was migrated by a newer one) -> StoreError
  asking to upgrade CODITECT.

Two processes opening the same database at once migrate it once: on PostgreSQL the upgrade holds
``pg_advisory_lock`` and re-reads the revision after getting it; on SQLite the upgrade runs inside
``BEGIN IMMEDIATE``, which takes the database's write lock up front. Within one process a lock
serializes upgrades as well, because Alembic's operation proxies are module globals.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import Connection, Engine, MetaData, create_engine, inspect, text
from sqlalchemy.exc import SQLAlchemyError

from coditect.errors import StoreError

__all__ = [
    "BASELINE_COLUMNS",
    "MIGRATIONS_DIR",
    "MigrationSettings",
    "SchemaStatus",
    "UpgradeResult",
    "alembic_config",
    "engine_url",
    "ensure_schema",
    "head_revision",
    "model_metadata",
    "new_revision",
    "schema_status",
    "upgrade_schema",
]

_log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).with_name("migrations")

#: ``pg_advisory_lock`` key held while migrating ("CODI" in ASCII); advisory locks are per database.
PG_LOCK_KEY = 0x434F4449

#: The columns of each table at the baseline revision ``0001`` (what ``create_all`` used to make).
BASELINE_COLUMNS: dict[str, frozenset[str]] = {
    "missions": frozenset(
        {"mission_id", "status", "request", "repo", "started_at", "wall_s", "report_json"}
    ),
    "events": frozenset({"seq", "event_id", "mission_id", "type", "ts", "body"}),
    "file_index": frozenset({"root_key", "path", "size", "mtime_ns", "sha256"}),
    "llm_calls": frozenset(
        {
            "id",
            "mission",
            "task",
            "agent",
            "model",
            "purpose",
            "input_tokens",
            "cached_input_tokens",
            "output_tokens",
            "usd",
            "priced",
            "latency_s",
            "reused",
            "ts",
        }
    ),
    "archive_cursors": frozenset({"dest", "seq"}),
}

#: Alembic keeps the running migration in module globals (``alembic.op``, ``alembic.context``):
#: two threads of one process must not migrate at once, whatever the database locks allow.
_PROCESS_LOCK = threading.Lock()

_UPGRADE_HINT = "run `coditect db upgrade` (or unset CODITECT_DB_AUTO_MIGRATE)"


class MigrationSettings(BaseSettings):
    """Environment settings of the migration step.

    Attributes:
        db_auto_migrate: ``CODITECT_DB_AUTO_MIGRATE``; when false, a store refuses to open a
            database whose schema is not at the newest revision instead of upgrading it.
    """

    model_config = SettingsConfigDict(env_prefix="CODITECT_", extra="ignore")

    db_auto_migrate: bool = True


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the migrations shipped with this CODITECT.

    Attributes:
        url: The database URL, password hidden.
        current: The revision in ``alembic_version``, or None when there is no such row.
        head: The newest revision this CODITECT ships.
        legacy_tables: CODITECT tables found in a database without ``alembic_version`` (made by
            ``create_all`` before migrations existed); empty otherwise.
        known: False when ``current`` is a revision this CODITECT does not ship.
    """

    url: str
    current: str | None
    head: str
    legacy_tables: tuple[str, ...] = ()
    known: bool = True

    @property
    def up_to_date(self) -> bool:
        """True when the schema is at the newest revision."""
        return self.current == self.head

    @property
    def state(self) -> str:
        """One word: ``current``, ``outdated``, ``legacy``, ``empty`` or ``newer``."""
        if not self.known:
            return "newer"
        if self.up_to_date:
            return "current"
        if self.current is not None:
            return "outdated"
        return "legacy" if self.legacy_tables else "empty"


@dataclass(frozen=True)
class UpgradeResult:
    """What :func:`upgrade_schema` found and left.

    Attributes:
        before: The status read after taking the migration lock.
        after: The status once the upgrade committed.
    """

    before: SchemaStatus
    after: SchemaStatus

    @property
    def migrated(self) -> bool:
        """True when this call changed the revision (False: another process had done it)."""
        return self.before.current != self.after.current


def engine_url(url: str) -> str:
    """A SQLAlchemy URL: ``postgresql://`` and ``postgres://`` get the psycopg 3 driver."""
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def alembic_config(
    connection: Connection | None = None,
    *,
    target_metadata: MetaData | Sequence[MetaData] | None = None,
) -> Config:
    """An Alembic config built in code (no ``alembic.ini``) pointing at the shipped scripts.

    Args:
        connection: The connection ``migrations/env.py`` runs on; the caller owns its transaction.
        target_metadata: The models, for autogenerate and schema comparison only.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Module names must not start with a digit (mypy checks the scripts as a package).
    cfg.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
    if connection is not None:
        cfg.attributes["connection"] = connection
    if target_metadata is not None:
        cfg.attributes["target_metadata"] = target_metadata
    return cfg


@functools.cache
def _script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


@functools.cache
def _known_revisions() -> frozenset[str]:
    return frozenset(s.revision for s in _script().walk_revisions())


def head_revision() -> str:
    """The newest revision shipped with this CODITECT."""
    head = _script().get_current_head()
    if head is None:  # pragma: no cover - the package always ships migrations
        raise StoreError(
            "no schema migrations found", hint=f"reinstall CODITECT ({MIGRATIONS_DIR})"
        )
    return head


def _safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


def _read_status(conn: Connection, url: str) -> SchemaStatus:
    heads = MigrationContext.configure(conn).get_current_heads()
    current = heads[0] if heads else None
    legacy: tuple[str, ...] = ()
    if current is None:
        tables = set(inspect(conn).get_table_names())
        legacy = tuple(t for t in BASELINE_COLUMNS if t in tables)
    known = all(h in _known_revisions() for h in heads) and len(heads) <= 1
    return SchemaStatus(
        url=url, current=current, head=head_revision(), legacy_tables=legacy, known=known
    )


def _check_known(status: SchemaStatus) -> None:
    if not status.known:
        raise StoreError(
            f"the database {status.url} has schema revision {status.current!r}, newer than this "
            f"CODITECT knows (its newest is {status.head!r}): a newer CODITECT migrated it",
            hint="upgrade CODITECT (pip install -U coditect) on every machine using this database",
            retryable=False,
        )


def _check_legacy_tables(conn: Connection, status: SchemaStatus) -> None:
    """A database without ``alembic_version``: its CODITECT tables must look like the baseline."""
    insp = inspect(conn)
    for table in status.legacy_tables:
        found = {c["name"] for c in insp.get_columns(table)}
        expected = BASELINE_COLUMNS[table]
        if found != expected:
            raise StoreError(
                f"table {table!r} in {status.url} was not made by CODITECT: columns "
                f"{sorted(found)}, expected {sorted(expected)}",
                hint="point CODITECT at a database of its own, or move that table away",
                retryable=False,
            )


@contextlib.contextmanager
def _exclusive(conn: Connection) -> Iterator[None]:
    """Hold the database-wide migration lock; the body commits its own work."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PG_LOCK_KEY})
        conn.commit()  # a session-level advisory lock outlives the transaction
        try:
            yield
        finally:
            conn.rollback()
            try:
                conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": PG_LOCK_KEY})
                conn.commit()
            except SQLAlchemyError:  # closing the session releases the lock as well
                conn.invalidate()
    elif dialect == "sqlite":
        # pysqlite starts no transaction before DDL: take the write lock explicitly.
        conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.rollback()
    else:
        try:
            yield
        finally:
            conn.rollback()


def schema_status(engine: Engine) -> SchemaStatus:
    """Read the schema revision of ``engine``'s database (no lock, no change).

    Raises:
        StoreError: The database cannot be reached.
    """
    url = _safe_url(engine)
    try:
        with engine.connect() as conn:
            return _read_status(conn, url)
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot read the schema revision of {url}: {exc}") from exc


def upgrade_schema(engine: Engine, revision: str = "head") -> UpgradeResult:
    """Migrate ``engine``'s database to ``revision`` under the migration lock.

    Raises:
        StoreError: The database is newer than this CODITECT, holds foreign tables with CODITECT's
            names, or the migration failed (it is rolled back where the database allows).
    """
    url = _safe_url(engine)
    try:
        with _PROCESS_LOCK, engine.connect() as conn, _exclusive(conn):
            before = _read_status(conn, url)
            _check_known(before)
            if before.current is None and before.legacy_tables:
                _check_legacy_tables(conn, before)
                _log.info("adopting a database made before migrations: %s", url)
            if before.current != revision and not (revision == "head" and before.up_to_date):
                command.upgrade(alembic_config(conn), revision)
            after = _read_status(conn, url)
            conn.commit()
    except SQLAlchemyError as exc:
        raise StoreError(f"cannot migrate the schema of {url}: {exc}") from exc
    if after.current != before.current:
        _log.info("schema of %s migrated from %s to %s", url, before.current, after.current)
    return UpgradeResult(before=before, after=after)


def ensure_schema(engine: Engine, *, auto_migrate: bool | None = None) -> SchemaStatus:
    """Make sure ``engine``'s database is at the newest revision before a store uses it.

    Args:
        engine: The store's engine.
        auto_migrate: Upgrade an older schema; None reads ``CODITECT_DB_AUTO_MIGRATE``
            (default true). When false, an older or empty schema is an error.

    Raises:
        StoreError: See :func:`upgrade_schema`; also when the schema is older and
            ``auto_migrate`` is false.
    """
    status = schema_status(engine)
    if status.up_to_date:
        return status
    _check_known(status)
    if auto_migrate is None:
        auto_migrate = MigrationSettings().db_auto_migrate
    if not auto_migrate:
        raise StoreError(
            f"the schema of {status.url} is {status.state} (revision {status.current or 'none'}; "
            f"this CODITECT needs {status.head}) and automatic migration is off",
            hint=_UPGRADE_HINT,
            retryable=False,
        )
    return upgrade_schema(engine).after


def model_metadata() -> MetaData:
    """Every table the migrations own, as the code declares it now (for comparing and autogenerate)."""
    from coditect.state.models import Base, archive_cursors, llm_calls

    meta = MetaData()
    for table in [*Base.metadata.tables.values(), llm_calls, archive_cursors]:
        table.to_metadata(meta)
    return meta


def new_revision(message: str, *, rev_id: str | None = None) -> Path:
    """Write a migration script for the difference between the models and the current head.

    A developer tool: the head schema is built in a temporary SQLite database and compared with
    :func:`model_metadata`. Review the script before committing it.

    Args:
        message: What the revision changes (becomes the docstring and the file name).
        rev_id: The revision id; default the next four-digit number after the head.

    Returns:
        The path of the new script.
    """
    head = head_revision()
    rev_id = rev_id or (f"{int(head) + 1:04d}" if head.isdigit() else None)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{tmp}/head.db")
        try:
            upgrade_schema(engine)
            with engine.connect() as conn:
                cfg = alembic_config(conn, target_metadata=model_metadata())
                script = command.revision(cfg, message=message, autogenerate=True, rev_id=rev_id)
        finally:
            engine.dispose()
    _script.cache_clear()
    _known_revisions.cache_clear()
    if script is None or isinstance(script, list):  # pragma: no cover - one head, one script
        raise StoreError("alembic wrote no single revision script", retryable=False)
    return Path(script.path)
