"""The website's routes: one router per page family, registered after every API route (the pages' paths,
/{namespace}/{name} above all, would otherwise shadow them), fixed paths first and /{name} last."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.staticfiles import StaticFiles

from cove.server.web import home, lists, people

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def install(app) -> None:  # type: ignore[no-untyped-def]
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # fixed paths first: /, /models, /datasets, /spaces
    app.include_router(home.router)
    app.include_router(lists.router)
    # -- the repo pages' router (/{namespace}/{name}, /datasets/..., /spaces/..., tree, blob, commits) --
    # -- the accounts' router (/login, /logout, /settings/..., /new and the repo forms) --
    app.include_router(router)
    # last: /{name} must not shadow any page above
    app.include_router(people.router)
