"""The list API: query parameters into one database query (cove.store.list_repo_page), rows into the Hub's
JSON. Only the page's rows are loaded; a row that cannot be listed is logged and left out, never a 500.

The website's lists and counts come from here too: the same query with the sidebar's facet filters, the
counts of what a caller sees, and the sidebar's value counts (public figures cached per database and
type, keyed by cove.store.listing_fingerprint, plus the private repos the caller may read, counted live).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.server.auth.service import Principal
from cove.server.deps import Hub
from cove.server.repos.service import summary_json
from cove.server.search.schemas import ListQuery
from cove.store import (
    DEFAULT_BRANCH,
    FACETS,
    SORTS,
    Facets,
    FileEntry,
    RepoPage,
    RepoQuery,
    RepoRow,
    count_repos,
    list_repo_page,
    listing_fingerprint,
    private_facet_counts,
    public_facet_counts,
)

log = logging.getLogger(__name__)


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


def _prefixed(prefix: str, values: list[str]) -> list[str]:
    return [v if v.startswith(prefix) else prefix + v for v in _split(values)]


def readable_namespaces(caller: Principal) -> set[str] | None:
    """Whose private repos the caller may list: its own and its orgs' (any role); None for a site admin
    (every repo); none for anonymous callers. The rule of Principal.can_read, as a query."""
    if caller.name is None:
        return set()
    if caller.is_admin:
        return None
    return {caller.name, *caller.orgs}


def build_query(repo_type: str, params: ListQuery, caller: Principal, page_size: int) -> RepoQuery:
    if params.sort is not None and params.sort not in SORTS:
        raise HubRequestError(f"Unknown sort {params.sort!r}: use one of {', '.join(SORTS)}.")
    if params.direction not in (None, "-1", "1"):
        raise HubRequestError(
            f"Unknown direction {params.direction!r}: use -1 (descending) or 1 (ascending)."
        )
    tags = _split(params.filter) + _split(params.library)
    if params.pipeline_tag:
        tags.append(params.pipeline_tag)
    tags += _prefixed("license:", params.license)
    if repo_type == "dataset":
        tags += _prefixed("language:", params.language)
    else:
        tags += _split(params.language)
    links: list[tuple[str, str]] = []
    if repo_type == "space":
        links += [("dataset", d) for d in _split(params.datasets)]
        links += [("model", m) for m in _split(params.models)]
    else:
        tags += _prefixed("dataset:", params.dataset)
    return RepoQuery(
        repo_type=repo_type,
        search=tuple(term for term in params.search if term),
        author=params.author or None,
        tags=tuple(tags),
        links=tuple(links),
        linked=params.linked and repo_type == "space",
        readable=readable_namespaces(caller),
        sort=params.sort,
        descending=params.direction != "1",
        limit=min(params.limit, page_size) if params.limit else page_size,
        cursor=params.cursor,
    )


def list_page(
    hub: Hub, s: Session, caller: Principal, repo_type: str, params: ListQuery
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of items in the Hub's JSON and the cursor of the next page (None on the last)."""
    query = build_query(repo_type, params, caller, hub.settings.list_page_size)
    if params.gated:  # Cove has no gated repos
        return [], None
    page = list_repo_page(s, query)
    expand = set(_split(params.expand))
    with_config = (params.config or "config" in expand) and repo_type == "model"
    with_siblings = params.full or "siblings" in expand
    want = _Want(
        sha=params.full or with_siblings or with_config or "sha" in expand,
        siblings=with_siblings,
        card=params.full or params.cardData or "cardData" in expand,
        config=with_config,
    )
    items = []
    for repo in page.rows:
        try:
            items.append(_item(hub, s, repo, want))
        except Exception:  # one bad row is left out of the page, not a 500 for every caller
            log.exception(
                "repo %d (%s %s/%s) could not be listed", repo.id, repo.type, repo.namespace, repo.name
            )
    return items, page.next_cursor


@dataclass(frozen=True)
class _Want:
    sha: bool
    siblings: bool
    card: bool
    config: bool


def _item(hub: Hub, s: Session, repo: RepoRow, want: _Want) -> dict[str, Any]:
    sha = hub.store.resolve(s, repo, DEFAULT_BRANCH) if want.sha else None
    item = summary_json(repo, sha, with_card=want.card)
    if sha is None or not (want.siblings or want.config):
        return item
    tree = hub.store.tree(s, sha)
    if want.siblings:
        item["siblings"] = [{"rfilename": p} for p in sorted(tree)]
    if want.config:
        config = _config_summary(hub, tree.get("config.json"))
        if config is not None:
            item["config"] = config
    return item


def _config_summary(hub: Hub, entry: FileEntry | None) -> dict[str, Any] | None:
    """config.json's architectures and model_type, as model_info gives them (a small file only)."""
    if entry is None or entry.size > 1_000_000:
        return None
    try:
        data = json.loads(hub.store.blobs.read(entry.sha256))
    except (ValueError, OSError):
        return None
    if not isinstance(data, dict):
        return None
    return {k: data[k] for k in ("architectures", "model_type") if k in data}


# --- the website's lists ------------------------------------------------------------------------

# the website's sort names -> (the list query's sort, descending)
SITE_SORTS: dict[str, tuple[str | None, bool]] = {
    "updated": ("lastModified", True),
    "downloads": ("downloads", True),
    "likes": ("likes", True),
    "created": ("createdAt", True),
    "name": (None, False),
}
MAX_SEARCH_CHARS = 200


@dataclass(frozen=True)
class SiteQuery:
    """What a list page asks: a search, the sidebar's filters (FACETS kind or 'author' -> value), a sort
    (SITE_SORTS) and the cursor of the page."""

    repo_type: str
    search: str = ""
    filters: tuple[tuple[str, str], ...] = ()
    sort: str = "updated"
    cursor: str | None = None


def check_site_query(q: SiteQuery) -> SiteQuery:
    if q.sort not in SITE_SORTS:
        raise HubRequestError(f"Unknown sort {q.sort!r}: use one of {', '.join(SITE_SORTS)}.")
    if len(q.search) > MAX_SEARCH_CHARS:
        raise HubRequestError(
            f"The search is {len(q.search)} characters long: use at most {MAX_SEARCH_CHARS}."
        )
    kinds = facet_kinds(q.repo_type)
    for kind, _ in q.filters:
        if kind not in kinds:
            raise HubRequestError(
                f"{q.repo_type.capitalize()}s cannot be filtered by {kind!r}: use {', '.join(kinds)}."
            )
    return q


def facet_kinds(repo_type: str) -> list[str]:
    """The sidebar's filters for a repo type, in display order."""
    return [kind for kind, fields in FACETS.items() if repo_type in fields] + ["author"]


def site_page(s: Session, caller: Principal, q: SiteQuery, limit: int) -> RepoPage:
    """One page of a website list: the rows the caller may see, filtered and sorted in the database."""
    check_site_query(q)
    sort, descending = SITE_SORTS[q.sort]
    filters = dict(q.filters)
    author = filters.pop("author", None)
    return list_repo_page(
        s,
        RepoQuery(
            repo_type=q.repo_type,
            search=(q.search,) if q.search.strip() else (),
            author=author,
            facets=tuple(filters.items()),
            readable=readable_namespaces(caller),
            sort=sort,
            descending=descending,
            limit=limit,
            cursor=q.cursor,
        ),
    )


def count_visible(s: Session, caller: Principal, repo_type: str, *, author: str | None = None) -> int:
    """How many repos of a type (of one author) the caller sees: private ones only where it may read them."""
    return count_repos(s, repo_type, readable_namespaces(caller), author=author)


FACET_CACHE_SECONDS = 60.0  # card changes, deleted and renamed repos reach the public figures within this


@dataclass(frozen=True)
class _PublicFacets:
    at: float
    fingerprint: tuple[Any, ...]
    counts: Facets
    ranked: dict[str, list[tuple[str, int]]]  # per kind, every value by count (most first), then by value


_facet_cache: OrderedDict[tuple[str, str], _PublicFacets] = OrderedDict()
_facet_guard = threading.Lock()


def _ranked(counts: dict[str, int]) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _public_facets(hub: Hub, s: Session, repo_type: str) -> _PublicFacets:
    key = (hub.store.database_url, repo_type)
    fingerprint = listing_fingerprint(s, repo_type)
    now = time.monotonic()
    with _facet_guard:
        hit = _facet_cache.get(key)
    if hit is not None and hit.fingerprint == fingerprint and now - hit.at < FACET_CACHE_SECONDS:
        return hit
    counts = public_facet_counts(s, repo_type)
    fresh = _PublicFacets(now, fingerprint, counts, {k: _ranked(v) for k, v in counts.items()})
    with _facet_guard:
        _facet_cache[key] = fresh
        _facet_cache.move_to_end(key)
        while len(_facet_cache) > 64:
            _facet_cache.popitem(last=False)
    return fresh


def facet_counts(
    hub: Hub, s: Session, caller: Principal, repo_type: str, *, top: int, shown: dict[str, str]
) -> dict[str, list[tuple[str, int]]]:
    """Per sidebar filter, its top values among the repos the caller sees, with how many have each (most
    first), plus the value of each filter in shown (the ones in use), whatever its count."""
    public = _public_facets(hub, s, repo_type)
    private = private_facet_counts(s, repo_type, readable_namespaces(caller))
    out: dict[str, list[tuple[str, int]]] = {}
    for kind, ranked in public.ranked.items():
        mine = private.get(kind, {})
        if mine:  # only values the caller's private repos have can climb above the public top
            climbers = {v for v, _ in ranked[:top]} | set(mine)
            ranked = _ranked({v: public.counts[kind].get(v, 0) + mine.get(v, 0) for v in climbers})
        values = ranked[:top]
        active = shown.get(kind)
        if active is not None and active not in dict(values):
            values.append((active, public.counts[kind].get(active, 0) + mine.get(active, 0)))
        out[kind] = values
    return out
