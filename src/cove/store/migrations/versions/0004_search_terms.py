"""Full-text search and the website's sidebar: repo_terms (what the search box matches: the id's word
suffixes and the default branch's README words, back-filled here), the facet kinds of repo_tags (derived
again from every stored card) and the index the visible-repo counts read.

The README back-fill needs the blob store: Cove passes it (cove.store.schema.upgrade's blobs); without it
only the ids are indexed, and each README is indexed again when it next changes.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import logging

import sqlalchemy as sa
from alembic import context, op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

log = logging.getLogger("cove.store.migrations")
NEW_TAG_KINDS = ("task", "library", "language", "license")


def upgrade() -> None:
    from cove.store.search import rebuild_tags, rebuild_terms

    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if not inspector.has_table("repo_terms"):
        op.create_table(
            "repo_terms",
            sa.Column(
                "term",
                sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql"),
                primary_key=True,
            ),
            sa.Column(
                "repo_id", sa.Integer(), sa.ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True
            ),
            sa.Column("source", sa.String(8), primary_key=True),
        )
        op.create_index("ix_repo_terms_repo", "repo_terms", ["repo_id", "source", "term"])
    if "ix_repos_visibility" not in {ix["name"] for ix in inspector.get_indexes("repos")}:
        op.create_index("ix_repos_visibility", "repos", ["type", "private", "id"])
    rebuild_tags(bind)  # derived_tags now also yields the sidebar's facet kinds
    blobs = context.config.attributes.get("blobs")
    if blobs is None:
        log.warning("no blob store given: search indexes repo ids now, each README when it next changes")
    rebuild_terms(bind, blobs)


def downgrade() -> None:
    op.drop_index("ix_repos_visibility", "repos")
    op.drop_index("ix_repo_terms_repo", "repo_terms")
    op.drop_table("repo_terms")
    # what 0003's derived_tags did not yield: the facet kinds, and 'dataset' rows of repos other than Spaces
    kinds = ", ".join(f"'{k}'" for k in NEW_TAG_KINDS)
    op.execute(f"DELETE FROM repo_tags WHERE kind IN ({kinds})")
    op.execute(
        "DELETE FROM repo_tags WHERE kind = 'dataset' "
        "AND repo_id IN (SELECT id FROM repos WHERE type <> 'space')"
    )
