"""Who is browsing: the caller of a page, the layout's context.

Today a page's caller comes from the Authorization header alone (API clients, tests); signed session
cookies, sign-in and CSRF tokens build on this module (the accounts work)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from cove.server.auth.service import Principal, authenticate
from cove.server.deps import Db


def web_principal(request: Request, s: Db) -> Principal:
    """The page's caller; cached on the request so the layout and the route see the same one."""
    cached = getattr(request.state, "web_principal", None)
    if cached is not None:
        return cached
    principal = authenticate(s, request.headers.get("authorization"))
    request.state.web_principal = principal
    return principal


WebCaller = Annotated[Principal, Depends(web_principal)]


def layout_context(request: Request) -> dict[str, Any]:
    user = getattr(request.state, "web_principal", None) or Principal()
    return {
        "user": user,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "base_url": str(request.base_url).rstrip("/"),
    }
