"""The website's routes: one router per page family, registered after every API route (the pages' paths,
/{namespace}/{name} above all, would otherwise shadow them)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def install(app) -> None:  # type: ignore[no-untyped-def]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    # the repo pages (/{namespace}/{name}/...): after every fixed-path page router above (/settings/tokens,
    # /models, ...), and before the /{name} user page router, which is included last
    from cove.server.web import files, history, repo, viewer

    for pages in (viewer.router, history.router, files.router, repo.router):
        app.include_router(pages)
