"""The lists: /models, /datasets and /spaces, searched, filtered by the sidebar's facets, sorted and paged
in the database (cove.server.search.service, the list API's query), and the repo cards every list shows."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.server.deps import TYPE_PREFIX, Db, HubDep
from cove.server.search.service import (
    SITE_SORTS,
    SiteQuery,
    count_visible,
    facet_counts,
    facet_kinds,
    site_page,
)
from cove.server.web.render import page
from cove.server.web.session import WebCaller
from cove.store import RepoRow, stored_card

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 30
FACET_VALUES_SHOWN = 12
PLURAL = {"model": "models", "dataset": "datasets", "space": "spaces"}
FACET_LABELS = {
    "task": "Tasks",
    "library": "Libraries",
    "license": "Licenses",
    "language": "Languages",
    "dataset": "Datasets",
    "author": "Authors",
}
SORT_LABELS = {
    "updated": "Recently updated",
    "downloads": "Most downloads",
    "likes": "Most likes",
    "created": "Newest",
    "name": "Name",
}


@dataclass(frozen=True)
class RepoCard:
    """What a list shows of one repo."""

    id: str
    url: str
    type: str
    private: bool
    task: str  # a model's pipeline_tag, a dataset's first task category, a Space's SDK
    library: str
    downloads: int
    likes: int
    updated_at: dt.datetime


def _first(value: Any) -> str:
    """The first of a card field that may be a string, a list or anything else YAML holds."""
    if isinstance(value, list):
        value = next((v for v in value if v is not None), None)
    return "" if value is None or isinstance(value, dict) else str(value)[:100]


def repo_card(row: RepoRow) -> RepoCard:
    card = stored_card(row.card_json)
    task = {
        "model": card.get("pipeline_tag"),
        "dataset": card.get("task_categories"),
        "space": card.get("sdk") or row.sdk,
    }[row.type]
    return RepoCard(
        id=row.repo_id,
        url=f"/{TYPE_PREFIX[row.type]}{row.repo_id}",
        type=row.type,
        private=row.private,
        task=_first(task),
        library=_first(card.get("library_name")) if row.type == "model" else "",
        downloads=row.downloads or 0,
        likes=row.likes or 0,
        updated_at=row.updated_at,
    )


def _href(path: str, params: dict[str, str]) -> str:
    query = urlencode([(k, v) for k, v in params.items() if v])
    return f"{path}?{query}" if query else path


def list_page(request: Request, hub: HubDep, s: Db, caller: WebCaller, repo_type: str) -> HTMLResponse:
    path = f"/{PLURAL[repo_type]}"
    args = request.query_params
    kinds = facet_kinds(repo_type)
    filters = {kind: args[kind].strip() for kind in kinds if args.get(kind, "").strip()}
    # the Hub's own names for two filters (its list URLs and the JSON API use them)
    for alias, kind in (("pipeline_tag", "task"), ("author", "author")):
        if kind in kinds and kind not in filters and args.get(alias, "").strip():
            filters[kind] = args[alias].strip()
    query = SiteQuery(
        repo_type=repo_type,
        search=args.get("search", "").strip(),
        filters=tuple(filters.items()),
        sort=args.get("sort", "").strip() or "updated",
        cursor=args.get("cursor") or None,
    )
    result = site_page(s, caller, query, PAGE_SIZE)
    # every link keeps the search, the filters and the sort, and starts again at the first page
    state = {"search": query.search, **filters, "sort": "" if query.sort == "updated" else query.sort}
    counts = facet_counts(hub, s, caller, repo_type, top=FACET_VALUES_SHOWN, shown=filters)
    facets = []
    for kind in kinds:
        active = filters.get(kind)
        items = [
            {
                "value": value,
                "count": n,
                "active": value == active,
                "href": _href(path, {**state, kind: "" if value == active else value}),
            }
            for value, n in counts.get(kind, [])
        ]
        if items:
            facets.append({"kind": kind, "label": FACET_LABELS[kind], "options": items})
    unfiltered = not query.search and not filters
    return page(
        request,
        "list.html",
        title=PLURAL[repo_type].capitalize(),
        plural=PLURAL[repo_type],
        path=path,
        search=query.search,
        search_query=query.search if repo_type == "model" else "",
        total=count_visible(s, caller, repo_type) if unfiltered else None,
        cards=[repo_card(row) for row in result.rows],
        facets=facets,
        active=[
            {"label": FACET_LABELS[kind], "value": value, "href": _href(path, {**state, kind: ""})}
            for kind, value in filters.items()
        ],
        clear_href=_href(path, {"sort": state["sort"]}),
        hidden={k: v for k, v in state.items() if k != "search" and v},
        sorts=[
            {
                "label": SORT_LABELS[name],
                "active": name == query.sort,
                "href": _href(path, {**state, "sort": "" if name == "updated" else name}),
            }
            for name in SITE_SORTS
        ],
        next_href=_href(path, {**state, "cursor": result.next_cursor}) if result.next_cursor else None,
        first_href=_href(path, state) if query.cursor else None,
    )


@router.get("/models", response_class=HTMLResponse)
def models(request: Request, hub: HubDep, s: Db, caller: WebCaller) -> HTMLResponse:
    return list_page(request, hub, s, caller, "model")


@router.get("/datasets", response_class=HTMLResponse)
def datasets(request: Request, hub: HubDep, s: Db, caller: WebCaller) -> HTMLResponse:
    return list_page(request, hub, s, caller, "dataset")


@router.get("/spaces", response_class=HTMLResponse)
def spaces(request: Request, hub: HubDep, s: Db, caller: WebCaller) -> HTMLResponse:
    return list_page(request, hub, s, caller, "space")
