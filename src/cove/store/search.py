"""The list/search query over repos (what GET /api/models|datasets|spaces and the website's lists answer):
visibility, full-text search, author, tag, facet and link filters, sort and keyset pagination, all in SQL
that SQLite and PostgreSQL both run, so a page costs the rows it returns, never the whole table.

Filters match the derived tags in repo_tags, which follow each repo's card: sync_tags runs in the
transaction that stores a new card on the default branch, rebuild_tags back-fills every repo (the 0002 and
0004 migrations). A change to what derived_tags yields needs a migration that calls rebuild_tags again.

A search matches a repo whose id holds it (the Hub's substring search) or whose README holds every word
of it (word prefixes: 'sentim movie' finds "sentiment ... movies"). repo_terms holds both sides' words
(id_terms, readme_terms), kept in step by the store when a repo is created or moved and when the default
branch's README changes; rebuild_terms back-fills every repo (the 0004 migration). A word is an index range
over the terms, so a search costs the repos it matches, not the table.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import re
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    delete,
    exists,
    false,
    func,
    insert,
    literal,
    or_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.store.cards import _as_list, card_tags
from cove.store.db import CommitRow, RefRow, RepoRow, RepoTagRow, RepoTermRow

if TYPE_CHECKING:
    from cove.store.blobs import BlobStore

log = logging.getLogger(__name__)

# the Hub's sort names; trendingScore follows downloads, as in summary_json
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
# what the website's sidebar filters by: repo_tags kind -> the card fields that give it, per repo type ('dataset'
# is also what a Space links to, so the list API's datasets= filter for Spaces matches these rows)
FACETS: dict[str, dict[str, tuple[str, ...]]] = {
    "task": {"model": ("pipeline_tag",), "dataset": ("task_categories",)},
    "library": {"model": ("library_name",)},
    "language": {"model": ("language",), "dataset": ("language",)},
    "license": {"model": ("license",), "dataset": ("license",), "space": ("license",)},
    "dataset": {"model": ("datasets",), "space": ("datasets",)},
}


def normalize_tag(value: Any) -> str | None:
    """A tag as stored and matched: lower-cased, unstorable characters replaced; None when empty or longer
    than MAX_TAG_CHARS."""
    text = _UNSTORABLE.sub("\ufffd", str(value)).strip().lower()
    return text if text and len(text) <= MAX_TAG_CHARS else None


def derived_tags(card: dict[str, Any], repo_type: str) -> set[tuple[str, str]]:
    """(kind, value) rows a repo with this card is listed by: 'tag' for what a filter matches (the tags the
    card yields, pipeline_tag and library_name, a dataset's "key:value" tags), one kind per FACETS entry
    for the card field it names (the website's sidebar), and 'model' for the models a Space links to."""
    values = list(card_tags(card, repo_type))
    values += _as_list(card.get("pipeline_tag")) + _as_list(card.get("library_name"))
    if repo_type == "dataset":
        for key in _DATASET_TAG_KEYS:
            values += [f"{key}:{v}" for v in _as_list(card.get(key))]
    out = {("tag", t) for t in map(normalize_tag, values) if t}
    kinds = [(kind, fields.get(repo_type, ())) for kind, fields in FACETS.items()]
    if repo_type == "space":
        kinds.append(("model", ("models",)))
    for kind, keys in kinds:
        for key in keys:
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
    count = 0
    for page in _repo_pages(conn, (RepoRow.type, RepoRow.card_json), batch):
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
        count += len(page)
    return count


def _repo_pages(conn: Connection, columns: tuple[Any, ...], batch: int) -> Iterator[list[Any]]:
    """Every repo as (id, *columns) rows, in pages of batch by id (keyset, so a page costs its rows)."""
    last = 0
    while True:
        page = list(
            conn.execute(
                select(RepoRow.id, *columns).where(RepoRow.id > last).order_by(RepoRow.id).limit(batch)
            ).all()
        )
        if not page:
            return
        yield page
        last = page[-1][0]


# --- search terms -------------------------------------------------------------------------------

MAX_TERM_CHARS = 64  # a longer word is indexed, and searched, by its first 64 characters
MAX_README_SEARCH_BYTES = 256 * 1024  # the head of a README the search box reads
MAX_TEXT_TERMS = 5000  # distinct README words per repo, in reading order
_WORD = re.compile(r"\w+")
# above every character a term can hold (\w never matches a noncharacter): term < word + _TOP is every term
# that begins with word, in the bytewise order both databases keep the column in
_TOP = "\U0010ffff"


def query_words(search: str) -> list[str]:
    """The words of a search, as terms are matched: lower-cased runs of letters, digits and '_'."""
    return [w[:MAX_TERM_CHARS] for w in _WORD.findall(search.lower())]


def readme_body(text: str) -> str:
    """A README below its YAML front matter: all of it without one, nothing when the front matter does not
    close (the text read ended inside it)."""
    text = text.lstrip("\ufeff")
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        return text
    for i in range(1, len(lines)):
        if lines[i].strip() == "---":
            return "".join(lines[i + 1 :])
    return ""


def id_terms(repo_id: str) -> set[str]:
    """Every suffix of each word of a repo id: any piece of an id word begins one, so these rows find the
    candidates of the id substring match (the Hub's search: 'bert' finds distilbert-base)."""
    terms: set[str] = set()
    for word in _WORD.findall(repo_id.lower()):
        terms.update(word[i : i + MAX_TERM_CHARS] for i in range(len(word)))
    return terms


def readme_terms(readme: str) -> set[str]:
    """The words of a README below its front matter (snake_case words also by their parts), at most
    MAX_TEXT_TERMS of them in reading order."""
    body: dict[str, None] = {}
    for match in _WORD.finditer(readme_body(readme).lower()):
        word = match.group()[:MAX_TERM_CHARS]
        for w in (word, *word.split("_")) if "_" in word else (word,):
            if w:
                body.setdefault(w, None)
        if len(body) >= MAX_TEXT_TERMS:
            break
    return set(list(body)[:MAX_TEXT_TERMS])


def readme_text(blobs: BlobStore, sha256: str, size: int) -> str:
    """The head of a README blob the search box reads (MAX_README_SEARCH_BYTES), as text."""
    head = b"".join(blobs.iter_range(sha256, 0, min(size, MAX_README_SEARCH_BYTES)))
    return head.decode("utf-8", "ignore")


def sync_terms(s: Session | Connection, repo_pk: int, source: str, terms: Iterable[str]) -> None:
    """Replace a repo's search terms of one source ('id' or 'readme'), in the caller's transaction."""
    s.execute(delete(RepoTermRow).where(RepoTermRow.repo_id == repo_pk, RepoTermRow.source == source))
    rows = [{"term": t, "repo_id": repo_pk, "source": source} for t in sorted(set(terms))]
    if rows:
        s.execute(insert(RepoTermRow), rows)


def rebuild_terms(conn: Connection, blobs: BlobStore | None, batch: int = 500) -> int:
    """Derive every repo's search terms again, from its id and (with blobs) the README at the head of its
    default branch; returns how many repos were read. A README that cannot be read gives the id's terms
    only (and a log line), never a failed upgrade."""
    from cove.store.repos import DEFAULT_BRANCH, _load_tree

    conn.execute(delete(RepoTermRow))
    count = 0
    for page in _repo_pages(conn, (RepoRow.namespace, RepoRow.name), batch):
        trees: dict[int, str] = {}
        if blobs is not None:
            heads = conn.execute(
                select(RefRow.repo_id, CommitRow.tree_sha256)
                .join(CommitRow, CommitRow.id == RefRow.commit_id)
                .where(
                    RefRow.repo_id.in_([pk for pk, _, _ in page]),
                    RefRow.kind == "branch",
                    RefRow.name == DEFAULT_BRANCH,
                )
            )
            trees = {pk: tree for pk, tree in heads}
        rows = []
        for pk, namespace, name in page:
            rows += [
                {"term": t, "repo_id": pk, "source": "id"} for t in sorted(id_terms(f"{namespace}/{name}"))
            ]
            if blobs is None or pk not in trees:
                continue
            try:
                readme = dict(_load_tree(blobs, trees[pk])).get("README.md")
                text = readme_text(blobs, readme.sha256, readme.size) if readme is not None else ""
            except Exception:  # a missing blob must not stop the upgrade for every other repo
                log.exception("repo %d: its README could not be read for search", pk)
                continue
            rows += [{"term": t, "repo_id": pk, "source": "readme"} for t in sorted(readme_terms(text))]
        if rows:
            conn.execute(insert(RepoTermRow), rows)
        count += len(page)
    return count


# --- the list query ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RepoQuery:
    """One page of a repo listing. Every filter must match."""

    repo_type: str
    # searches: every word (query_words) of each must begin one of the repo's search terms
    search: tuple[str, ...] = ()
    author: str | None = None  # the namespace, case-insensitively
    tags: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # ('model' | 'dataset', repo id) a Space links to
    facets: tuple[tuple[str, str], ...] = ()  # (FACETS kind, value): the card field that kind names
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


def _sort_key(sort: str | None) -> SQLColumnExpression[Any]:
    """The ordering column; each has an index ending in the primary key (see RepoRow)."""
    if sort is None or sort == "id":
        return RepoRow.lower_id
    if sort == "lastModified":
        return RepoRow.updated_at
    if sort == "createdAt":
        return RepoRow.created_at
    if sort in ("downloads", "trendingScore"):
        return RepoRow.downloads
    if sort == "likes":
        return RepoRow.likes
    raise HubRequestError(f"Unknown sort {sort!r}: use one of {', '.join(SORTS)}.")


def _key_value(row: RepoRow, sort: str | None) -> Any:
    if sort is None or sort == "id":
        return row.lower_id
    if sort == "lastModified":
        return row.updated_at.isoformat()
    if sort == "createdAt":
        return row.created_at.isoformat()
    if sort == "likes":
        return row.likes or 0
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
        elif sort in ("downloads", "trendingScore", "likes"):
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


# A filter that matches at most this many index rows drives the query on SQLite (see _driver)
DRIVER_MAX_ROWS = 1000


@dataclass
class _Filters:
    """A listing's filters two ways: tests of one repo row, and candidate sets (SELECTs of repo ids read
    from an index), each holding every repo the tests pass and maybe more."""

    tests: list[ColumnElement[bool]]
    candidates: list[Any]

    def search(self, text: str) -> None:
        """The repo id holds text (case-insensitively, as the Hub's search), or every word of text begins a
        word of the README. Each word's terms, of either source, hold both kinds of match."""
        words = query_words(text)
        in_id = RepoRow.lower_id.contains(text.lower(), autoescape=True)
        in_readme = [
            exists().where(RepoTermRow.repo_id == RepoRow.id, RepoTermRow.source == "readme", *_begins(word))
            for word in words
        ]
        self.tests.append(or_(in_id, and_(*in_readme)) if words else in_id)
        self.candidates += [select(RepoTermRow.repo_id).where(*_begins(word)) for word in words]

    def tag(self, kind: str, value: str) -> None:
        match = (RepoTagRow.kind == kind, RepoTagRow.value == value)
        self.tests.append(exists().where(RepoTagRow.repo_id == RepoRow.id, *match))
        self.candidates.append(select(RepoTagRow.repo_id).where(*match))


def _of_author(s: Session, author: str) -> list[ColumnElement[bool]]:
    author = author.lower()
    where = [func.lower(RepoRow.namespace) == author]
    if s.get_bind().dialect.name == "sqlite":
        # the same rows as a range of the id-order index (SQLite compares text bytewise; '0' follows '/'),
        # so an author's page does not walk every other namespace's repos
        where += [RepoRow.lower_id >= author + "/", RepoRow.lower_id < author + "0"]
    return where


def _begins(word: str) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return RepoTermRow.term >= word, RepoTermRow.term < word + _TOP


def _driver(s: Session, candidates: list[Any]) -> tuple[Any | None, int]:
    """The candidate set with fewest index rows, when that is at most DRIVER_MAX_ROWS, and how many.

    SQLite's planner knows nothing of how many repos a word or a tag matches, so it walks the list order
    and tests each repo: a rare word would cost a walk of the whole table. A count capped at the fewest so
    far (an index range each) finds a selective filter; the query then starts from its ids and sorts those.
    Filters that match many rows stay tests in the walk, which then stops early."""
    best, fewest = None, DRIVER_MAX_ROWS + 1
    for ids in candidates:
        rows = ids.with_only_columns(literal(1)).limit(fewest)  # a constant: read from the index alone
        n = s.scalar(select(func.count()).select_from(rows.subquery())) or 0
        if n < fewest:
            best, fewest = ids, n
        if n == 0:
            break
    return best, fewest


def list_repo_page(s: Session, q: RepoQuery) -> RepoPage:
    """The rows of one page (at most q.limit, the only RepoRows loaded) and the cursor of the next."""
    key = _sort_key(q.sort)
    descending = q.descending and q.sort is not None
    where: list[ColumnElement[bool]] = []
    visible = _visible(q.readable)
    if visible is not None:
        where.append(visible)
    filters = _Filters(tests=[], candidates=[])
    for text in q.search:
        filters.search(text)
    for kind, raw in [("tag", t) for t in q.tags] + list(q.links) + list(q.facets):
        value = normalize_tag(raw)
        if value is None:  # an empty or over-long value is never stored: nothing matches it
            return RepoPage(rows=[], next_cursor=None)
        filters.tag(kind, value)
    if q.author:
        where += _of_author(s, q.author)
    if q.linked:
        where.append(_has(("model", "dataset")))
    driver = None
    if filters.candidates and s.get_bind().dialect.name == "sqlite":  # PostgreSQL's planner has statistics
        driver, matches = _driver(s, filters.candidates)
        if matches == 0:
            return RepoPage(rows=[], next_cursor=None)
    if driver is not None:
        # an expression rather than the column, so SQLite looks the candidates up by primary key instead
        # of walking a list index on type
        where += [(RepoRow.type + "") == q.repo_type, RepoRow.id.in_(driver)]
    else:
        where.append(RepoRow.type == q.repo_type)
    where += filters.tests
    if q.cursor:
        after, pk = _decode_cursor(q, q.cursor)
        # a row-value comparison, which both databases run as an index range
        here: Any = tuple_(key, RepoRow.id)
        there: Any = (after, pk)
        where.append(here < there if descending else here > there)
    order = [key.desc(), RepoRow.id.desc()] if descending else [key.asc(), RepoRow.id.asc()]
    rows = list(s.scalars(select(RepoRow).where(*where).order_by(*order).limit(q.limit + 1)))
    more = len(rows) > q.limit
    rows = rows[: q.limit]
    return RepoPage(rows=rows, next_cursor=_encode_cursor(q, rows[-1]) if more else None)


# --- counts --------------------------------------------------------------------------------------

Facets = dict[str, dict[str, int]]  # FACETS kind, or 'author' -> value -> number of repos


def count_repos(
    s: Session, repo_type: str, readable: Collection[str] | None, *, author: str | None = None
) -> int:
    """How many repos of a type the caller sees (readable as in RepoQuery), optionally of one author (as
    RepoQuery.author): the public ones, an index-only count, plus the private ones it may read."""
    where: list[ColumnElement[bool]] = [RepoRow.type == repo_type]
    if author:
        where += _of_author(s, author)
    if readable is None:
        return s.scalar(select(func.count()).where(*where)) or 0
    public = s.scalar(select(func.count()).where(*where, RepoRow.private == false())) or 0
    if not readable:
        return public
    private = select(func.count()).where(
        *where, RepoRow.private == true(), RepoRow.namespace.in_(sorted(readable))
    )
    return public + (s.scalar(private) or 0)


def _facet_counts(s: Session, repo_type: str, visible: ColumnElement[bool]) -> Facets:
    kinds = [kind for kind, fields in FACETS.items() if repo_type in fields]
    out: Facets = {kind: {} for kind in kinds}
    repos = select(RepoRow.id).where(RepoRow.type == repo_type, visible)
    rows = s.execute(
        select(RepoTagRow.kind, RepoTagRow.value, func.count())
        # kind as an expression: SQLite then reads each listed repo's rows by primary key, rather than
        # every row of these kinds with a lookup of its repo (twice as slow at 10,000 repos)
        .where(RepoTagRow.repo_id.in_(repos), (RepoTagRow.kind + "").in_(kinds))
        .group_by(RepoTagRow.kind, RepoTagRow.value)
    )
    for kind, value, n in rows:
        out[kind][value] = n
    authors = s.execute(
        select(RepoRow.namespace, func.count())
        .where(RepoRow.type == repo_type, visible)
        .group_by(RepoRow.namespace)
    )
    out["author"] = dict(authors.tuples().all())
    return out


def public_facet_counts(s: Session, repo_type: str) -> Facets:
    """Per sidebar facet (and author), how many public repos of a type have each value: a pass over the
    type's tags, which callers cache (listing_fingerprint says when the figures may have changed)."""
    return _facet_counts(s, repo_type, RepoRow.private == false())


def private_facet_counts(s: Session, repo_type: str, readable: Collection[str] | None) -> Facets:
    """public_facet_counts over the private repos the caller may read (None: every private repo)."""
    if readable is not None and not readable:
        return {}
    visible = RepoRow.private == true()
    if readable is not None:
        visible = and_(visible, RepoRow.namespace.in_(sorted(readable)))
    return _facet_counts(s, repo_type, visible)


def listing_fingerprint(s: Session, repo_type: str) -> tuple[Any, ...]:
    """A few index lookups that change when a repo is created, or when any repo of the type turns private
    or public (or a private one is deleted): a cache of public figures keyed by it never counts a repo
    that has just turned private. Card changes, deletions and renames of public repos it does not see:
    such a cache also expires."""
    newest = s.scalar(select(func.max(RepoRow.id)))
    private = s.execute(
        select(func.count(), func.coalesce(func.sum(RepoRow.id), 0)).where(
            RepoRow.type == repo_type, RepoRow.private == true()
        )
    ).one()
    return newest, tuple(private)
