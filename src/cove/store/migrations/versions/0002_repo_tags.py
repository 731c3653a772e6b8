"""The list API runs in SQL: derived tags (repo_tags, back-filled from each repo's stored card), the
lower-cased repo id (repos.lower_id) and one index per list order.

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

LIST_INDEXES = {
    "ix_repos_list_id": ["type", "lower_id", "id"],
    "ix_repos_list_updated": ["type", "updated_at", "id"],
    "ix_repos_list_created": ["type", "created_at", "id"],
    "ix_repos_list_downloads": ["type", "downloads", "id"],
}


def upgrade() -> None:
    from cove.store.search import rebuild_tags

    bind = op.get_bind()
    inspector = sa.inspect(bind)
    # a data dir from before migrations was built by create_all from the current models, so it may hold
    # these already: keep what exists, fill it
    if "lower_id" not in {c["name"] for c in inspector.get_columns("repos")}:
        op.add_column("repos", sa.Column("lower_id", sa.String(193), nullable=True))
    op.execute("UPDATE repos SET lower_id = lower(namespace || '/' || name)")  # repo ids are ASCII
    existing = {ix["name"] for ix in inspector.get_indexes("repos")}
    for name, columns in LIST_INDEXES.items():
        if name not in existing:
            op.create_index(name, "repos", columns)
    if not inspector.has_table("repo_tags"):
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
    for name in LIST_INDEXES:
        op.drop_index(name, "repos")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), never batch mode's copy: dropping and renaming repos
    # would cascade-delete every commit and ref
    op.execute("ALTER TABLE repos DROP COLUMN lower_id")
