"""Alembic's environment for the gateway's schema.

It never opens an engine: it runs the revisions on the connection that
:func:`gateway.storage.schema.config` put in ``config.attributes["connection"]``, inside
that connection's transaction (Alembic joins a transaction already begun), so an upgrade
commits whole or not at all on SQLite and PostgreSQL alike. SQLite renders every ALTER
as a batch (copy the table, move the rows, swap), as SQLite's ALTER TABLE cannot change
a column or a constraint.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from gateway.storage.tables import metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if context.is_offline_mode() or not isinstance(connection, Connection):
        raise RuntimeError(
            "the gateway's migrations run on the gateway's own connection: "
            "use `gateway db upgrade` (or gateway.storage.schema)"
        )
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()
