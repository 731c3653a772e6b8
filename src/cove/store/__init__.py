"""The hub's persistence: every table (repos with their derived tags and search terms, commits, refs, LFS
links, accounts, memberships, tokens, likes, web sessions), the schema migrations, the list/search query
and the listing counts, the content-addressed blob stores and garbage collection.

It sits below both of its users: the server (cove.server puts HTTP, auth rules and search in front of it)
and the embedded hub (cove.hub.local reads a data dir's repos, and commits into it, with no server
running). They use only the names exported here; the modules behind them are this package's own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cove.store.blobs import BlobStore, DiskBlobStore
from cove.store.cards import (
    card_from_readme,
    card_from_readme_bounded,
    card_tags,
    parse_yaml,
    parse_yaml_bounded,
    split_front_matter,
)
from cove.store.db import (
    ROLES,
    Account,
    CommitRow,
    LfsLinkRow,
    LikeRow,
    Membership,
    RefRow,
    RepoRow,
    RepoTagRow,
    RepoTermRow,
    SpaceSettingRow,
    Token,
    WebSession,
    make_engine,
    utcnow,
)
from cove.store.repos import (
    DEFAULT_BRANCH,
    REPO_TYPES,
    CommitInfo,
    CommitOp,
    FileEntry,
    RepoStore,
    check_name,
    check_path,
    check_ref_name,
    check_repo_type,
    git_blob_oid,
    lfs_pointer,
    split_repo_id,
)
from cove.store.search import (
    FACETS,
    SORTS,
    Facets,
    RepoPage,
    RepoQuery,
    count_repos,
    list_repo_page,
    listing_fingerprint,
    private_facet_counts,
    public_facet_counts,
    query_words,
    stored_card,
)
from cove.store.text import check_text

if TYPE_CHECKING:
    from cove.store.gc import GcReport
    from cove.store.s3 import S3BlobStore

__all__ = [
    "DEFAULT_BRANCH",
    "FACETS",
    "REPO_TYPES",
    "ROLES",
    "SORTS",
    "Account",
    "BlobStore",
    "CommitInfo",
    "CommitOp",
    "CommitRow",
    "DiskBlobStore",
    "Facets",
    "FileEntry",
    "GcReport",
    "LfsLinkRow",
    "LikeRow",
    "Membership",
    "RefRow",
    "RepoPage",
    "RepoQuery",
    "RepoRow",
    "RepoStore",
    "RepoTagRow",
    "RepoTermRow",
    "S3BlobStore",
    "SpaceSettingRow",
    "Token",
    "WebSession",
    "card_from_readme",
    "card_from_readme_bounded",
    "card_tags",
    "check_name",
    "check_path",
    "check_ref_name",
    "check_repo_type",
    "check_schema",
    "check_text",
    "collect_garbage",
    "count_repos",
    "git_blob_oid",
    "lfs_pointer",
    "list_repo_page",
    "listing_fingerprint",
    "make_engine",
    "parse_yaml",
    "parse_yaml_bounded",
    "private_facet_counts",
    "public_facet_counts",
    "query_words",
    "schema_revisions",
    "split_front_matter",
    "split_repo_id",
    "stored_card",
    "upgrade_schema",
    "utcnow",
]


def upgrade_schema(
    engine: Any, target: str = "head", *, blobs: BlobStore | None = None
) -> tuple[str | None, str]:
    """Migrate the database to target (Alembic); returns (revision before, revision after). With blobs,
    migrations that back-fill from file contents (the README words search matches) read them there."""
    from cove.store import schema

    return schema.upgrade(engine, target, blobs=blobs)


def check_schema(engine: Any, url_for_message: str) -> None:
    """Raise SchemaOutOfDateError unless the database is at this Cove's head revision."""
    from cove.store import schema

    schema.check(engine, url_for_message)


def schema_revisions(engine: Any) -> tuple[str | None, str]:
    """(the database's schema revision, or None when it has none; this Cove's head revision)."""
    from cove.store import schema

    return schema.current_revision(engine), schema.head_revision()


def collect_garbage(store: RepoStore, *, grace_seconds: float = 3600, dry_run: bool = False) -> GcReport:
    from cove.store import gc

    return gc.collect_garbage(store, grace_seconds=grace_seconds, dry_run=dry_run)


def __getattr__(name: str) -> Any:
    # boto3 is imported only by a server configured for S3
    if name == "S3BlobStore":
        from cove.store.s3 import S3BlobStore

        return S3BlobStore
    if name == "GcReport":
        from cove.store.gc import GcReport

        return GcReport
    raise AttributeError(f"module 'cove.store' has no attribute {name!r}")
