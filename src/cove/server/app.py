"""The FastAPI application: routers per domain, one error handler, the embedded hub behind it."""

from __future__ import annotations

import logging

from fastapi import FastAPI

from cove.hub.storage.repos import RepoStore
from cove.server import errors
from cove.server.auth import models as _auth_models  # noqa: F401 - registers the auth tables
from cove.server.deps import Hub, load_secret
from cove.server.settings import Settings


def open_hub(settings: Settings) -> Hub:
    """The data dir's store with every table created (the server's and the embedded hub's)."""
    store = RepoStore(settings.data_dir, database_url=settings.resolved_database_url)
    store.create_tables()
    return Hub(settings=settings, store=store, secret=load_secret(settings))


def create_app(settings: Settings | None = None) -> FastAPI:
    from cove.server.files.router import router as files_router
    from cove.server.repos.router import router as repos_router
    from cove.server.search.router import router as search_router

    settings = settings or Settings()
    app = FastAPI(title="Cove hub", docs_url="/api/docs", openapi_url="/api/openapi.json")
    app.state.hub = open_hub(settings)
    errors.install(app)

    @app.get("/api/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    # order matters: specific routes, then the /api/{kind}/... dispatcher, then the catch-all resolve
    app.include_router(repos_router)
    app.include_router(search_router)
    app.include_router(files_router)
    # uvicorn's access log prints URLs only; tokens travel in headers and are never logged
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    return app
