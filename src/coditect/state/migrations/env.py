"""Alembic environment: runs the migrations on the connection :mod:`coditect.state.migrate` hands in.

There is no ``alembic.ini``: the :class:`~alembic.config.Config` is built in code, and the caller
owns the connection, the transaction and the lock around it (see ``migrate.upgrade_schema``).
``config.attributes["target_metadata"]`` is set only when comparing or autogenerating.
"""

from __future__ import annotations

from alembic import context

config = context.config


def _run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:  # pragma: no cover - only reachable through a hand-made alembic.ini
        raise RuntimeError("CODITECT migrations run on a connection from coditect.state.migrate")
    context.configure(
        connection=connection,
        target_metadata=config.attributes.get("target_metadata"),
        # SQLite cannot ALTER most things in place: alembic copies the table ("batch" mode).
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():  # pragma: no cover
    raise RuntimeError("offline (--sql) migrations are not supported; use `coditect db upgrade`")
_run_online()
