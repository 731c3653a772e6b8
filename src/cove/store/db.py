"""Every table of the hub (repos with their derived tags and search terms, commits, refs, LFS links,
accounts, memberships, tokens, likes, web sessions, space settings), behind SQLAlchemy so SQLite (the default) and PostgreSQL
both work; the server and the embedded hub share one database."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


def _lower_id(context: Any) -> str:
    params = context.get_current_parameters()
    return f"{params['namespace']}/{params['name']}".lower()


class RepoRow(Base):
    __tablename__ = "repos"
    __table_args__ = (
        UniqueConstraint("type", "namespace", "name"),
        # the list API's orders (cove.store.search), each ending in the primary key that breaks ties, so
        # a page is an index range and not a sort of every repo
        Index("ix_repos_list_id", "type", "lower_id", "id"),
        Index("ix_repos_list_updated", "type", "updated_at", "id"),
        Index("ix_repos_list_created", "type", "created_at", "id"),
        Index("ix_repos_list_downloads", "type", "downloads", "id"),
        Index("ix_repos_list_likes", "type", "likes", "id"),
        # counts of what a caller sees (cove.store.search.count_repos) read this index only
        Index("ix_repos_visibility", "type", "private", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    type: Mapped[str] = mapped_column(String(16))  # model | dataset | space
    namespace: Mapped[str] = mapped_column(String(96), index=True)
    name: Mapped[str] = mapped_column(String(96))
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # README.md front matter of the default branch, as JSON, refreshed on each commit to it
    card_json: Mapped[str] = mapped_column(Text, default="{}")
    sdk: Mapped[str | None] = mapped_column(String(32), nullable=True)
    downloads: Mapped[int] = mapped_column(Integer, default=0)
    # how many users like the repo (rows in likes), kept in step by the like service for the list order
    likes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # "namespace/name" lower-cased, the list API's id order (an expression index would not survive
    # Alembic's schema comparison on PostgreSQL); set on insert and by move_repo
    lower_id: Mapped[str | None] = mapped_column(String(193), nullable=True, default=_lower_id)

    @property
    def repo_id(self) -> str:
        return f"{self.namespace}/{self.name}"


class RepoTagRow(Base):
    """What a repo can be listed by, derived from its card (cove.store.search.derived_tags): lower-cased
    tags (kind 'tag') and a Space's linked models and datasets ('model', 'dataset'). Kept in sync with
    repos.card_json in the same transaction, so the list API filters in SQL."""

    __tablename__ = "repo_tags"
    __table_args__ = (Index("ix_repo_tags_kind_value", "kind", "value"),)

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(8), primary_key=True)
    value: Mapped[str] = mapped_column(String(255), primary_key=True)


class RepoTermRow(Base):
    """What the search box matches (cove.store.search): source 'id' rows hold every suffix of each word of
    the repo id (candidates for the id substring match), 'readme' rows the words of the default branch's
    README. The primary key leads with the term, so a word is an index range on both databases; the column
    sorts bytewise (PostgreSQL's "C" collation, SQLite's default), so that range is exactly the terms the
    word begins. Kept in step with the id and the README by the store."""

    __tablename__ = "repo_terms"
    # one repo's README terms from a word on: a list that walks repos tests each with one seek
    __table_args__ = (Index("ix_repo_terms_repo", "repo_id", "source", "term"),)

    term: Mapped[str] = mapped_column(
        String(64).with_variant(String(64, collation="C"), "postgresql"), primary_key=True
    )
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    source: Mapped[str] = mapped_column(String(8), primary_key=True)  # id | readme


class CommitRow(Base):
    __tablename__ = "commits"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    tree_sha256: Mapped[str] = mapped_column(String(64))  # JSON manifest in the blob store
    title: Mapped[str] = mapped_column(Text)
    message: Mapped[str] = mapped_column(Text, default="")
    author: Mapped[str] = mapped_column(String(96))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class RefRow(Base):
    __tablename__ = "refs"
    __table_args__ = (UniqueConstraint("repo_id", "kind", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(8))  # branch | tag
    name: Mapped[str] = mapped_column(String(255))
    commit_id: Mapped[str] = mapped_column(String(40))
    message: Mapped[str] = mapped_column(Text, default="")


class LfsLinkRow(Base):
    """An LFS object uploaded to (or imported into) a repo. Blobs are shared across repos, so knowing an
    object's sha256 must not be enough to commit it: the bytes must have been sent to this repo once."""

    __tablename__ = "lfs_links"
    __table_args__ = (UniqueConstraint("repo_id", "oid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), index=True)
    oid: Mapped[str] = mapped_column(String(64))


ROLES = ("read", "write", "admin")


class Account(Base):
    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(96), unique=True)
    kind: Mapped[str] = mapped_column(String(8))  # user | org
    fullname: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str | None] = mapped_column(String(200), nullable=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    # a slow salted KDF's output with its parameters (users who sign in to the website); None: no password
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)


class Membership(Base):
    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("org_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    org_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    role: Mapped[str] = mapped_column(String(8))  # read | write | admin


class Token(Base):
    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(96))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(8))  # read | write
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)


class LikeRow(Base):
    """A user likes a repo (one row per pair); repos.likes counts them."""

    __tablename__ = "likes"
    __table_args__ = (Index("ix_likes_repo", "repo_id"),)

    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True)
    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)


class WebSession(Base):
    """A signed-in browser: the cookie carries a random id, the table its sha256, so a stolen database
    yields no live cookie and signing out (or revoking) ends the session on every replica."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime, index=True)


class SpaceSettingRow(Base):
    """A space's secret, variable or runtime setting (kind: secret | variable | runtime). Secrets reach the
    app as environment variables and no API ever returns their values."""

    __tablename__ = "space_settings"

    repo_id: Mapped[int] = mapped_column(ForeignKey("repos.id", ondelete="CASCADE"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    updated_at: Mapped[dt.datetime] = mapped_column(DateTime, default=utcnow, onupdate=utcnow)


def normalize_url(url: str) -> str:
    """postgresql:// and postgres:// URLs use psycopg 3, the driver Cove installs."""
    for plain in ("postgres://", "postgresql://"):
        if url.startswith(plain):
            return "postgresql+psycopg://" + url[len(plain) :]
    return url


def make_engine(url: str) -> Engine:
    url = normalize_url(url)
    if not url.startswith("sqlite"):
        # a shared server: check pooled connections (the database may have restarted) and keep the pool
        # large enough for the server's worker threads
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=30)
    # SQLite connections are cheap; the pool must cover the server's worker threads (40 by default)
    engine = create_engine(url, connect_args={"timeout": 30}, pool_size=20, max_overflow=40)
    if url.startswith("sqlite"):

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(conn, _record):  # type: ignore[no-untyped-def]
            cur = conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

    return engine
