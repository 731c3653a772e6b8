"""The Hub's like API, as huggingface_hub calls it: POST/DELETE /api/{kind}/{id}/like (like, `unlike()`),
GET /api/users/{user}/likes (`list_liked_repos()`) and GET /api/{kind}/{id}/likers (`list_repo_likers()`).

The caller is a token (Authorization header) or, for the hub's own page scripts, the session cookie with
the page's X-CSRF-Token (web/session.py `ApiCaller`). Liking needs a write token or a signed-in browser.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from cove.server import rawpath  # noqa: F401  # registers the {x:seg} / {x:kind} convertors
from cove.server.deps import PLURAL, Db, HubDep, find_repo, iso
from cove.server.repos import likes
from cove.server.repos.router import _page
from cove.server.responses import SafeJSONResponse
from cove.server.web.session import ApiCaller

router = APIRouter()
REPO = "/api/{kind:kind}/{namespace:seg}/{name:seg}"


def _answer(liked: bool, count: int) -> dict[str, Any]:
    return {"liked": liked, "likes": count}


@router.post(REPO + "/like")
def like(kind: str, namespace: str, name: str, hub: HubDep, s: Db, caller: ApiCaller) -> SafeJSONResponse:
    repo = find_repo(PLURAL[kind], namespace, name, hub, s, caller)
    likes.like(s, caller, repo)
    return SafeJSONResponse(_answer(True, repo.likes))


@router.delete(REPO + "/like")
def unlike(kind: str, namespace: str, name: str, hub: HubDep, s: Db, caller: ApiCaller) -> SafeJSONResponse:
    repo = find_repo(PLURAL[kind], namespace, name, hub, s, caller)
    likes.unlike(s, caller, repo)
    return SafeJSONResponse(_answer(False, repo.likes))


@router.get(REPO + "/likers")
def likers(
    request: Request, kind: str, namespace: str, name: str, hub: HubDep, s: Db, caller: ApiCaller
) -> Response:
    repo = find_repo(PLURAL[kind], namespace, name, hub, s, caller)
    items = [
        {"user": a.name, "fullname": a.fullname or a.name, "avatarUrl": ""}
        for a in likes.likers(s, caller, repo)
    ]
    return _page(request, items, hub.settings.list_page_size)


@router.get("/api/users/{user:seg}/likes")
def liked_repos(request: Request, user: str, hub: HubDep, s: Db, caller: ApiCaller) -> Response:
    items = [
        {"createdAt": iso(row.created_at), "repo": {"name": repo.repo_id, "type": repo.type}}
        for row, repo in likes.liked_repos(s, caller, user)
    ]
    return _page(request, items, hub.settings.list_page_size)
