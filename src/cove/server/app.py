"""The FastAPI application: routers per domain, one error handler, the embedded hub behind it."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from cove.errors import BlobStoreConfigError
from cove.server import errors, openapi
from cove.server.deps import Hub, load_secret
from cove.server.logs import RedactQueryMiddleware, install_filter
from cove.server.rawpath import RawPathMiddleware
from cove.server.responses import SafeJSONResponse
from cove.server.settings import Settings
from cove.store import BlobStore, DiskBlobStore, RepoStore


def open_blob_store(settings: Settings) -> BlobStore:
    kind = settings.blob_store.lower()
    if kind == "disk":
        return DiskBlobStore(settings.data_dir.expanduser() / "blobs")
    if kind == "s3":
        from cove.store import S3BlobStore

        return S3BlobStore(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url,
            region=settings.s3_region,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            prefix=settings.s3_prefix,
            spool_dir=settings.data_dir.expanduser(),
        )
    raise BlobStoreConfigError(f"Unknown COVE_BLOB_STORE {settings.blob_store!r}: use disk or s3.")


def open_hub(settings: Settings, *, migrate: bool | None = None) -> Hub:
    """The configured store, its schema migrated (SQLite by default) or checked (a shared database)."""
    data_dir = settings.data_dir.expanduser()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    data_dir.chmod(0o700)  # tokens' hashes, private repos' blobs and the signing secret live here
    store = RepoStore(
        settings.data_dir,
        database_url=settings.resolved_database_url,
        blobs=open_blob_store(settings),
        card_timeout=settings.yaml_timeout_seconds,
    )
    if migrate is None:
        migrate = settings.auto_migrate
    if migrate is None:
        migrate = store.engine.dialect.name == "sqlite"
    if migrate:
        store.create_tables()
    else:
        store.check_schema()
    _restrict_database_file(store)
    return Hub(settings=settings, store=store, secret=load_secret(settings))


def _restrict_database_file(store: RepoStore) -> None:
    """hub.sqlite (and its -wal/-shm, which SQLite creates with the database's mode) readable by us only."""
    if store.engine.dialect.name != "sqlite" or not store.engine.url.database:
        return
    path = Path(store.engine.url.database)
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if candidate.exists():
            candidate.chmod(0o600)


def create_app(settings: Settings | None = None) -> FastAPI:
    from cove.server.files.router import router as files_router
    from cove.server.repos.router import router as repos_router
    from cove.server.search.router import router as search_router

    settings = settings or Settings()
    # every JSON answer renders even when a row stored before text was validated at the door holds a lone
    # surrogate or a NaN: one bad row must not break a repo's info, tree or a listing for others
    app = FastAPI(
        title="Cove hub",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        default_response_class=SafeJSONResponse,
    )
    app.state.hub = open_hub(settings)
    errors.install(app)
    openapi.install(app)
    app.add_middleware(RawPathMiddleware)
    app.add_middleware(RedactQueryMiddleware)  # outermost: it must see the server's own scope

    @app.get("/api/health")
    async def health() -> dict[str, str]:  # async: answered on the event loop, no worker thread needed
        return {"status": "ok"}

    # order matters: specific routes, then the /api/{kind}/... dispatcher, then the catch-all resolve
    from cove.server.inference.router import install as install_inference

    install_inference(app)  # first: /api/tasks would fall to /api/{kind}; models load on first request
    from cove.server.spaces.router import install as install_spaces

    install_spaces(app)  # before /api/{kind}/...: /api/spaces/{id}/runtime, logs, secrets, ...
    app.include_router(repos_router)
    app.include_router(search_router)
    app.include_router(files_router)
    # the website last: its /{namespace}/{name} pages would shadow the API's paths
    from cove.server.web.router import install as install_web

    install_web(app)
    from cove.server.spaces.proxy import install_space_proxy

    install_space_proxy(app, app.state.spaces.locate)  # after the website: its space pages keep priority
    # signed LFS URLs carry sig= in their query: redacted from every log line, at any log level
    install_filter()
    return app
