"""The website's routes: one router per page family, registered after every API route (the pages' paths,
/{namespace}/{name} above all, would otherwise shadow them), fixed paths first and /{name} last."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.staticfiles import StaticFiles

from cove.server.web import home, lists, people

STATIC_DIR = Path(__file__).parent / "static"

router = APIRouter(include_in_schema=False)


def _refused(request: Request, exc: Exception) -> Response:
    """A refused form post (web/session.py FormRefused): a page for browsers, JSON for other clients."""
    from cove.server.errors import error_response
    from cove.server.web.render import page, wants_html
    from cove.server.web.session import FormRefused, login_url

    assert isinstance(exc, FormRefused)
    headers = {"X-Error-Code": exc.code, **exc.headers}
    if not wants_html(request):
        return error_response(exc.status, exc.message, exc.code, exc.headers)
    back = request.headers.get("referer", "")
    base = str(request.base_url)
    back_path = "/" + back[len(base) :] if back.startswith(base) else "/"
    return page(
        request,
        "account/refused.html",
        status_code=exc.status,
        headers=headers,
        status_code_value=exc.status,
        title=exc.title,
        message=exc.message,
        sign_in_url=login_url(back_path, expired=exc.code == "SessionExpired") if exc.sign_in else None,
    )


def install(app) -> None:  # type: ignore[no-untyped-def]
    from cove.server.repos.likes_router import router as likes_api
    from cove.server.web.account import router as account_router
    from cove.server.web.manage import router as manage_router
    from cove.server.web.session import FormRefused
    from cove.server.web.throttle import LoginThrottle

    settings = app.state.hub.settings
    app.state.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_window_seconds)
    app.add_exception_handler(FormRefused, _refused)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    # the Hub's like API (/api/{kind}/{id}/like, /likers, /api/users/{user}/likes): JSON, before any page
    app.include_router(likes_api)
    # fixed paths first: /, /models, /datasets, /spaces, /login, /logout, /settings/*, /new
    app.include_router(home.router)
    app.include_router(lists.router)
    app.include_router(account_router)
    # then the repo actions (/{repo}/upload|edit|settings|like), before the repo pages' catch-alls
    app.include_router(manage_router)
    app.include_router(router)
    # the repo pages (/{namespace}/{name}/...): after every fixed-path page router above, and before the
    # /{name} user page router, which is included last
    from cove.server.web import files, history, repo, viewer

    for pages in (viewer.router, history.router, files.router, repo.router):
        app.include_router(pages)
    # last: /{name} must not shadow any page above
    app.include_router(people.router)
