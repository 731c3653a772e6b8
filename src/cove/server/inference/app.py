"""``cove serve-inference``: a replica that serves only the inference API, on the hub's own store.

It opens the hub's database and blob store (the data dir, or the shared PostgreSQL + S3 of a scaled-out
hub: docs/decisions/hub-scale-out.md) and answers the inference routes with the hub's tokens and access
rules, so inference can run on other machines than the hub's API while reading the same repos. A shared
database is only checked, never migrated, as every replica does.
"""

from __future__ import annotations

from fastapi import FastAPI

from cove.server.settings import Settings


def create_inference_app(settings: Settings | None = None) -> FastAPI:
    from cove.server import errors
    from cove.server.app import open_hub
    from cove.server.inference.router import install
    from cove.server.logs import RedactQueryMiddleware, install_filter
    from cove.server.rawpath import RawPathMiddleware
    from cove.server.responses import SafeJSONResponse

    settings = settings or Settings()
    app = FastAPI(
        title="Cove inference",
        docs_url="/api/docs",
        openapi_url="/api/openapi.json",
        default_response_class=SafeJSONResponse,
    )
    app.state.hub = open_hub(settings)
    errors.install(app)
    app.add_middleware(RawPathMiddleware)
    app.add_middleware(RedactQueryMiddleware)

    @app.get("/api/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    install(app)
    install_filter()
    return app
