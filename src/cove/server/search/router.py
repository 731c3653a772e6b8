"""list_models / list_datasets / list_spaces: search, author, filter, sort, direction, limit, pagination."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from cove.errors import HubRequestError
from cove.server.deps import PLURAL, Caller, Db, HubDep
from cove.server.repos import service
from cove.store import DEFAULT_BRANCH, RepoRow

router = APIRouter()

_SORT_KEYS = {
    "lastModified": lambda r: r.updated_at,
    "createdAt": lambda r: r.created_at,
    "downloads": lambda r: r.downloads,
    "likes": lambda r: 0,
    "trendingScore": lambda r: r.downloads,
    "id": lambda r: r.repo_id.lower(),
}


def _matches(repo: RepoRow, *, search: str | None, author: str | None, filters: list[str]) -> bool:
    if author and repo.namespace.lower() != author.lower():
        return False
    if search and search.lower() not in repo.repo_id.lower():
        return False
    if filters:
        card = service.card(repo)
        values = {t.lower() for t in service.repo_tags(repo)}
        values |= {str(card.get(k)).lower() for k in ("pipeline_tag", "library_name") if card.get(k)}
        if not all(f.lower() in values for f in filters):
            return False
    return True


@router.get("/api/{kind}")
def list_repos(kind: str, request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    if kind not in PLURAL:
        return JSONResponse({"error": f"No route /api/{kind}."}, status_code=404)
    q = request.query_params
    filters = [f for value in q.getlist("filter") for f in value.split(",") if f]
    if q.get("pipeline_tag"):
        filters.append(q["pipeline_tag"])
    sort = q.get("sort")
    if sort is not None and sort not in _SORT_KEYS:
        raise HubRequestError(f"Unknown sort {sort!r}: use one of {', '.join(_SORT_KEYS)}.")
    try:
        limit = int(q["limit"]) if "limit" in q else None
        start = int(q.get("cursor", "0"))
    except ValueError as exc:
        raise HubRequestError("limit and cursor must be integers.") from exc
    repos = [
        r
        for r in hub.store.list_repos(s, PLURAL[kind])
        if caller.can_read(r) and _matches(r, search=q.get("search"), author=q.get("author"), filters=filters)
    ]
    descending = q.get("direction", "-1") == "-1"
    repos.sort(key=_SORT_KEYS[sort or "id"], reverse=descending if sort else False)
    full = q.get("full", "").lower() in ("1", "true")
    with_card = full or q.get("cardData", "").lower() in ("1", "true")
    page_size = min(limit, hub.settings.list_page_size) if limit else hub.settings.list_page_size
    page = repos[start : start + page_size]
    items: list[dict[str, Any]] = []
    for repo in page:
        sha = None
        if full:
            sha = hub.store.resolve(s, repo, DEFAULT_BRANCH)
        item = service.summary_json(repo, sha, with_card=with_card)
        if full and sha is not None:
            item["siblings"] = [{"rfilename": p} for p in sorted(hub.store.tree(s, sha))]
        items.append(item)
    headers = {}
    if start + page_size < len(repos) and (limit is None or start + page_size < limit):
        headers["Link"] = f'<{request.url.include_query_params(cursor=str(start + page_size))}>; rel="next"'
    return JSONResponse(items, headers=headers)
