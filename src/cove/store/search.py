"""The list/search query over repos (what GET /api/models|datasets|spaces answers): visibility, search,
author, tag and link filters, sort and keyset pagination, all in SQL that SQLite and PostgreSQL both run,
so a page costs the rows it returns, never the whole table.

Filters match the derived tags in repo_tags, which follow each repo's card: sync_tags runs in the
transaction that stores a new card on the default branch, rebuild_tags back-fills every repo (the 0002
migration). A change to what derived_tags yields needs a migration that calls rebuild_tags again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.store.cards import _as_list, card_tags
from cove.store.db import RepoRow, RepoTagRow

log = logging.getLogger(__name__)

# the Hub's sort names; likes are always 0 on Cove and trendingScore follows downloads, as in summary_json
SORTS = ("lastModified", "createdAt", "downloads", "likes", "trendingScore", "id")
MAX_TAG_CHARS = 255  # longer tags are not indexed, so a filter on one matches nothing
# the dataset card fields the Hub lists as "key:value" tags (list_datasets(language=...) sends those)
_DATASET_TAG_KEYS = (
    "annotations_creators",
    "language_creators",
    "language",
    "multilinguality",
    "size_categories",
    "source_datasets",
    "task_categories",
    "task_ids",
)
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")  # PostgreSQL text holds neither NULs nor surrogates


def normalize_tag(value: Any) -> str | None:
    """A tag as stored and matched: lower-cased, unstorable characters replaced; None when empty or longer
    than MAX_TAG_CHARS."""
    text = _UNSTORABLE.sub("\ufffd", str(value)).strip().lower()
    return text if text and len(text) <= MAX_TAG_CHARS else None


def derived_tags(card: dict[str, Any], repo_type: str) -> set[tuple[str, str]]:
    """(kind, value) rows a repo with this card is listed by: 'tag' for what a filter matches (the tags the
    card yields, pipeline_tag and library_name, a dataset's "key:value" tags), 'model' and 'dataset' for
    the models and datasets a Space links to."""
    values = list(card_tags(card, repo_type))
    values += _as_list(card.get("pipeline_tag")) + _as_list(card.get("library_name"))
    if repo_type == "dataset":
        for key in _DATASET_TAG_KEYS:
            values += [f"{key}:{v}" for v in _as_list(card.get(key))]
    out = {("tag", t) for t in map(normalize_tag, values) if t}
    if repo_type == "space":
        for kind, key in (("model", "models"), ("dataset", "datasets")):
            out |= {(kind, t) for t in map(normalize_tag, _as_list(card.get(key))) if t}
    return out


def stored_card(card_json: str | None) -> dict[str, Any]:
    """A repos.card_json value as a dict; {} for anything else (rows from older Cove versions included)."""
    try:
        data = json.loads(card_json or "{}")
    except (ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


def sync_tags(s: Session | Connection, repo_pk: int, repo_type: str, card: dict[str, Any]) -> None:
    """Replace a repo's derived tags with those of card, in the caller's transaction."""
    s.execute(delete(RepoTagRow).where(RepoTagRow.repo_id == repo_pk))
    rows = [{"repo_id": repo_pk, "kind": k, "value": v} for k, v in sorted(derived_tags(card, repo_type))]
    if rows:
        s.execute(insert(RepoTagRow), rows)


def rebuild_tags(conn: Connection, batch: int = 1000) -> int:
    """Derive every repo's tags from its stored card again; returns how many repos were read. A card that
    cannot be read gives no tags (and a log line), never a failed upgrade."""
    conn.execute(delete(RepoTagRow))
    last, count = 0, 0
    while True:
        page = conn.execute(
            select(RepoRow.id, RepoRow.type, RepoRow.card_json)
            .where(RepoRow.id > last)
            .order_by(RepoRow.id)
            .limit(batch)
        ).all()
        if not page:
            return count
        rows = []
        for pk, repo_type, card_json in page:
            try:
                tags = derived_tags(stored_card(card_json), repo_type)
            except Exception:  # a bad row must not stop the upgrade for every other repo
                log.exception("repo %d: its stored card yields no tags", pk)
                tags = set()
            rows += [{"repo_id": pk, "kind": k, "value": v} for k, v in sorted(tags)]
        if rows:
            conn.execute(insert(RepoTagRow), rows)
        last, count = page[-1][0], count + len(page)


@dataclass(frozen=True)
class RepoQuery:
    """One page of a repo listing. Every filter must match."""

    repo_type: str
    search: tuple[str, ...] = ()  # case-insensitive substrings of the repo id
    author: str | None = None  # the namespace, case-insensitively
    tags: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # ('model' | 'dataset', repo id) a Space links to
    linked: bool = False  # only Spaces that link to some model or dataset
    # namespaces whose private repos the caller may read (its own, its orgs'); None: all (a site admin)
    readable: Collection[str] | None = ()
    sort: str | None = None  # one of SORTS; None: by id, ascending
    descending: bool = True
    limit: int = 1000
    cursor: str | None = None  # from the previous page's next_cursor


@dataclass(frozen=True)
class RepoPage:
    rows: list[RepoRow]
    next_cursor: str | None  # None on the last page


def _sort_key(sort: str | None) -> SQLColumnExpression[Any] | None:
    """The ordering column (each has an index ending in the primary key, see RepoRow); None when the
    primary key alone orders (likes: all equal)."""
    if sort is None or sort == "id":
        return RepoRow.lower_id
    if sort == "lastModified":
        return RepoRow.updated_at
    if sort == "createdAt":
        return RepoRow.created_at
    if sort in ("downloads", "trendingScore"):
        return RepoRow.downloads
    if sort == "likes":
        return None
    raise HubRequestError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")


def _key_value(row: RepoRow, sort: str | None) -> Any:
    if sort is None or sort == "id":
        return row.lower_id
    if sort == "lastModified":
        return row.updated_at.isoformat()
    if sort == "createdAt":
        return row.created_at.isoformat()
    if sort == "likes":
        return None
    return row.downloads


def _encode_cursor(q: RepoQuery, row: RepoRow) -> str:
    payload = json.dumps([q.sort, q.descending, _key_value(row, q.sort), row.id], separators=(",", ":"))
    return base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")


def _decode_cursor(q: RepoQuery, cursor: str) -> tuple[Any, int]:
    bad = HubRequestError("Invalid pagination cursor: pass the URL from the Link header as is.")
    try:
        sort, descending, key, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    if (sort, descending) != (q.sort, q.descending) or not isinstance(pk, int) or isinstance(pk, bool):
        raise bad
    try:
        if sort in ("lastModified", "createdAt"):
            key = dt.datetime.fromisoformat(key)
        elif sort in ("downloads", "trendingScore"):
            key = int(key)
        elif sort in (None, "id"):
            key = str(key)
    except (ValueError, TypeError):
        raise bad from None
    return key, pk


def _visible(readable: Collection[str] | None) -> ColumnElement[bool] | None:
    if readable is None:
        return None
    public = RepoRow.private.is_(False)
    return or_(public, RepoRow.namespace.in_(sorted(readable))) if readable else public


def _has(kind: str | Iterable[str], value: str | None = None) -> ColumnElement[bool]:
    kinds = [kind] if isinstance(kind, str) else list(kind)
    where = [RepoTagRow.repo_id == RepoRow.id, RepoTagRow.kind.in_(kinds)]
    if value is not None:
        where.append(RepoTagRow.value == value)
    return exists().where(*where)


def list_repo_page(s: Session, q: RepoQuery) -> RepoPage:
    """The rows of one page (at most q.limit, the only RepoRows loaded) and the cursor of the next."""
    key = _sort_key(q.sort)
    descending = q.descending and q.sort is not None
    where: list[ColumnElement[bool]] = [RepoRow.type == q.repo_type]
    visible = _visible(q.readable)
    if visible is not None:
        where.append(visible)
    for term in q.search:
        where.append(RepoRow.lower_id.contains(term.lower(), autoescape=True))
    if q.author:
        author = q.author.lower()
        where.append(func.lower(RepoRow.namespace) == author)
        if s.get_bind().dialect.name == "sqlite":
            # the same rows as a range of the id-order index (SQLite compares text bytewise; '0' follows
            # '/'), so an author's page does not walk every other namespace's repos
            where += [RepoRow.lower_id >= author + "/", RepoRow.lower_id < author + "0"]
    for kind, raw in [("tag", t) for t in q.tags] + list(q.links):
        value = normalize_tag(raw)
        where.append(_has(kind, value) if value is not None else false())
    if q.linked:
        where.append(_has(("model", "dataset")))
    if q.cursor:
        after, pk = _decode_cursor(q, q.cursor)
        # a row-value comparison, which both databases run as an index range
        if key is not None:
            here: Any = tuple_(key, RepoRow.id)
            there: Any = (after, pk)
        else:
            here, there = RepoRow.id, pk
        where.append(here < there if descending else here > there)
    order = [RepoRow.id.desc() if descending else RepoRow.id.asc()]
    if key is not None:
        order.insert(0, key.desc() if descending else key.asc())
    rows = list(s.scalars(select(RepoRow).where(*where).order_by(*order).limit(q.limit + 1)))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return RepoPage(rows=rows, next_cursor=_encode_cursor(q, rows[-1]) if more else None)
