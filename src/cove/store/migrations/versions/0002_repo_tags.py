"""Derived tags (repo_tags), so the list API filters in SQL instead of loading every repo; back-filled from
each repo's stored card.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from cove.store.search import rebuild_tags

    bind = op.get_bind()
    # a data dir from before migrations was built by create_all from the current models, so it may hold
    # the table already (empty): keep it and fill it
    if not sa.inspect(bind).has_table("repo_tags"):
        op.create_table(
            "repo_tags",
            sa.Column(
                "repo_id", sa.Integer(), sa.ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
            ),
            sa.Column("kind", sa.String(8), primary_key=True),
            sa.Column("value", sa.String(255), primary_key=True),
        )
        op.create_index("ix_repo_tags_kind_value", "repo_tags", ["kind", "value"])
    rebuild_tags(bind)


def downgrade() -> None:
    op.drop_index("ix_repo_tags_kind_value", "repo_tags")
    op.drop_table("repo_tags")
