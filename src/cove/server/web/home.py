"""The home page: a search box, how many models, datasets and Spaces the caller sees, and the recently
updated ones of each."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from cove.server.deps import Db
from cove.server.search.service import SiteQuery, count_visible, site_page
from cove.server.web.lists import PLURAL, repo_card
from cove.server.web.render import page
from cove.server.web.session import WebCaller
from cove.store import REPO_TYPES

router = APIRouter(include_in_schema=False)

RECENT = 6  # repos of each type


@router.get("/", response_class=HTMLResponse)
def home(request: Request, s: Db, caller: WebCaller) -> HTMLResponse:
    sections = [
        {
            "type": repo_type,
            "plural": PLURAL[repo_type],
            "count": count_visible(s, caller, repo_type),
            "cards": [
                repo_card(row) for row in site_page(s, caller, SiteQuery(repo_type=repo_type), RECENT).rows
            ],
        }
        for repo_type in REPO_TYPES
    ]
    return page(request, "home.html", sections=sections)
