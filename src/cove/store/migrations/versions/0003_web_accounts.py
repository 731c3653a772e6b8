"""The website's tables: account passwords, likes (and their count on repos, with its list index) and
signed-in browser sessions.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "password_hash" not in {c["name"] for c in inspector.get_columns("accounts")}:
        op.add_column("accounts", sa.Column("password_hash", sa.String(255), nullable=True))
    if "likes" not in {c["name"] for c in inspector.get_columns("repos")}:
        op.add_column("repos", sa.Column("likes", sa.Integer(), nullable=False, server_default="0"))
    if "ix_repos_list_likes" not in {ix["name"] for ix in inspector.get_indexes("repos")}:
        op.create_index("ix_repos_list_likes", "repos", ["type", "likes", "id"])
    if not inspector.has_table("likes"):
        op.create_table(
            "likes",
            sa.Column(
                "user_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
            ),
            sa.Column(
                "repo_id", sa.Integer(), sa.ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
            ),
            sa.Column("created_at", sa.DateTime(), nullable=False),
        )
        op.create_index("ix_likes_repo", "likes", ["repo_id"])
    if not inspector.has_table("web_sessions"):
        op.create_table(
            "web_sessions",
            sa.Column("id_hash", sa.String(64), primary_key=True),
            sa.Column(
                "user_id", sa.Integer(), sa.ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False
            ),
            sa.Column("created_at", sa.DateTime(), nullable=False),
            sa.Column("expires_at", sa.DateTime(), nullable=False),
        )
        op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
        op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("web_sessions")
    op.drop_index("ix_likes_repo", "likes")
    op.drop_table("likes")
    op.drop_index("ix_repos_list_likes", "repos")
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+), never batch mode's copy (see 0002)
    op.execute("ALTER TABLE repos DROP COLUMN likes")
    op.execute("ALTER TABLE accounts DROP COLUMN password_hash")
