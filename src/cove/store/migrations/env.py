"""Alembic environment: migrations run on the connection cove.store.schema hands over."""

from __future__ import annotations

from alembic import context

from cove.store.db import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # pragma: no cover - Cove always passes its own connection
    raise RuntimeError("Run Cove's migrations with `cove db upgrade`, not the alembic command.")
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
