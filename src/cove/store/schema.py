"""Schema migrations (Alembic) for the hub database, run from Cove's code, not the alembic command.

SQLite data dirs (the embedded default) are upgraded when opened; a shared database (PostgreSQL) is
upgraded by `cove db upgrade` and only checked at server start, so replicas never race on DDL and an
operator decides when the schema moves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Engine

from cove.errors import SchemaOutOfDateError

if TYPE_CHECKING:
    from cove.store.blobs import BlobStore

BASELINE = "0001"  # the schema create_all built before migrations existed


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", "cove.store:migrations")
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(
    engine: Engine, target: str = "head", *, blobs: BlobStore | None = None
) -> tuple[str | None, str]:
    """Migrate the database to target; returns (revision before, revision after). Migrations that
    back-fill from file contents (0004: the README words the search box matches) read them from blobs."""
    from alembic import command

    before = current_revision(engine)
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        cfg.attributes["blobs"] = blobs
        if before is None and inspect(conn).has_table("repos"):
            # a data dir from before migrations: its tables are the baseline, so record that first
            command.stamp(cfg, BASELINE)
        command.upgrade(cfg, target)
    after = current_revision(engine)
    assert after is not None
    return before, after


def check(engine: Engine, url_for_message: str) -> None:
    """Raise SchemaOutOfDateError unless the database is at this Cove's head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no Cove schema yet" if current is None else f"is at schema revision {current}"
        raise SchemaOutOfDateError(
            f"The hub database {url_for_message} {state}, but this Cove needs revision {head}: run "
            "`cove db upgrade` (with the same COVE_DATABASE_URL) once, then start the servers."
        )
