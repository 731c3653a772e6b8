"""Who is browsing: the caller of a page (a token in the Authorization header, else the session cookie),
CSRF tokens, and the layout's context.

- The session cookie `cove_session` holds a random token; `web_sessions` stores its sha256 and expiry
  (auth/service.py). An unknown or expired cookie is anonymous: pages read as anonymous, and a form post
  with it answers "session expired, sign in again".
- Every form post carries `csrf_token`. For a signed-in browser it is an HMAC (the hub secret) of the
  session's id hash, so it changes with each sign-in and dies with the session. Anonymous forms (sign-in)
  use a signed double-submit cookie `cove_csrf`: the field must be the HMAC of the cookie. Requests that
  authenticate with an Authorization header need none: a browser never adds that header to a forged
  cross-site request.
- API routes accept the session cookie only through `cookie_principal(..., require_csrf=True)`: the request
  must also carry the page's token in an `X-CSRF-Token` header, which only the hub's own scripts can read.
  A cookie without it is anonymous, so a cross-site request never acts as the user.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

from fastapi import Depends, Request
from fastapi.responses import RedirectResponse
from sqlalchemy.orm import Session

from cove.errors import HubPermissionError
from cove.server.auth.service import Principal, authenticate, session_principal
from cove.server.deps import Db

SESSION_COOKIE = "cove_session"
CSRF_COOKIE = "cove_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class FormRefused(Exception):
    """A form post refused before anything changed: a page for browsers (with a sign-in link when signing
    in helps), a JSON error for other clients. web/router.py installs its handler."""

    def __init__(
        self,
        status: int,
        title: str,
        message: str,
        *,
        code: str,
        sign_in: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.message = message
        self.code = code
        self.sign_in = sign_in
        self.headers = headers or {}


@dataclass
class _Browser:
    via: str  # "header", "session" or "anonymous"
    session_hash: str | None = None
    dead_session: bool = False  # a session cookie came whose session is unknown or expired


def _secret(request: Request) -> bytes:
    return request.app.state.hub.secret


def sign(secret: bytes, purpose: str, value: str) -> str:
    """The HMAC (hub secret) of value for purpose: a page's CSRF token is sign(secret, "session", id hash)."""
    return hmac.new(secret, f"{purpose}:{value}".encode(), hashlib.sha256).hexdigest()


def _sign(request: Request, purpose: str, value: str) -> str:
    return sign(_secret(request), purpose, value)


def csrf_session_principal(s: Session, secret: bytes, cookie: str, sent: str) -> Principal | None:
    """The user of session cookie ``cookie`` when ``sent`` is that session's CSRF token; None when the
    session is unknown or expired; HubPermissionError when the token does not match."""
    found = session_principal(s, cookie)
    if found is None:
        return None
    principal, id_hash = found
    if not hmac.compare_digest(sent, sign(secret, "session", id_hash)):
        raise HubPermissionError(
            "The X-CSRF-Token header does not match your session: reload the page and retry."
        )
    return principal


def _lookup(request: Request, s: Session) -> tuple[Principal, _Browser]:
    header = request.headers.get("authorization")
    if header:
        return authenticate(s, header), _Browser("header")
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return Principal(), _Browser("anonymous")
    found = session_principal(s, token)
    if found is None:
        return Principal(), _Browser("anonymous", dead_session=True)
    principal, id_hash = found
    return principal, _Browser("session", session_hash=id_hash)


def web_principal(request: Request, s: Db) -> Principal:
    """The page's caller; cached on the request so the layout and the route see the same one."""
    cached = getattr(request.state, "web_principal", None)
    if cached is not None:
        return cached
    principal, browser = _lookup(request, s)
    request.state.web_principal = principal
    request.state.web_browser = browser
    if browser.session_hash is not None:
        request.state.csrf_token = _sign(request, "session", browser.session_hash)
    return principal


WebCaller = Annotated[Principal, Depends(web_principal)]


def _browser(request: Request) -> _Browser:
    browser = getattr(request.state, "web_browser", None)
    assert browser is not None, "web_principal runs before the form checks"
    return browser


def safe_next(value: str | None, default: str = "/") -> str:
    """A same-origin path to go to after signing in; anything else (another host, a scheme, '//x',
    backslashes, control characters) is the default."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return default
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def login_url(next_path: str, *, expired: bool = False) -> str:
    url = "/login?next=" + quote(safe_next(next_path), safe="/")
    return url + "&expired=1" if expired else url


def sign_in_redirect(request: Request) -> RedirectResponse:
    """A GET page that needs a signed-in caller sends an anonymous one to the sign-in page and back."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(login_url(target, expired=_browser(request).dead_session), status_code=303)


def signed_in_caller(request: Request, s: Db) -> Principal:
    """The caller of a form post that needs one: a dead session is "session expired", no session "sign in"
    (401 pages, before the body is read)."""
    principal = web_principal(request, s)
    if principal.name is not None:
        return principal
    if _browser(request).dead_session:
        raise FormRefused(
            401,
            "Session expired",
            "Your session has expired or was ended: sign in again, then repeat what you were doing. "
            "Nothing was changed.",
            code="SessionExpired",
            sign_in=True,
        )
    raise FormRefused(
        401,
        "Sign in needed",
        "Sign in to do this. Nothing was changed.",
        code="InvalidCredentials",
        sign_in=True,
    )


SignedIn = Annotated[Principal, Depends(signed_in_caller)]


def browser_session_caller(request: Request, s: Db) -> Principal:
    """Account settings (tokens, password, profile) are managed from a signed-in browser only: a token
    must not mint other tokens or change the password."""
    principal = signed_in_caller(request, s)
    if not principal.session:
        raise FormRefused(
            403,
            "Not allowed",
            "Account settings are managed from a signed-in browser: sign in at /login. An access token "
            "cannot create tokens or change the password.",
            code="Forbidden",
        )
    return principal


BrowserSession = Annotated[Principal, Depends(browser_session_caller)]


def expected_csrf(request: Request, *, anonymous: bool = False) -> str | None:
    """The CSRF token this request's forms must carry; None when the caller needs none (an Authorization
    header) -- '' when none can be valid (an anonymous form without the double-submit cookie). With
    anonymous, the double-submit token whoever the caller is (the sign-in form)."""
    browser = _browser(request)
    if browser.via == "header" and not anonymous:
        return None
    if browser.via == "session" and not anonymous:
        return request.state.csrf_token
    cookie = request.cookies.get(CSRF_COOKIE)
    return _sign(request, "anonymous", cookie) if cookie else ""


def check_csrf(request: Request, submitted: str | None, *, anonymous: bool = False) -> None:
    """Refuse (403, nothing changed) a form whose csrf_token is missing or not this browser's."""
    expected = expected_csrf(request, anonymous=anonymous)
    if expected is None:
        return
    if not submitted or not expected or not hmac.compare_digest(submitted, expected):
        raise FormRefused(
            403,
            "Form expired",
            "This form's security token is missing or does not match your browser's session (the page may "
            "be from before you signed in or out, or from another site). Reload the page and submit again. "
            "Nothing was changed.",
            code="CsrfTokenInvalid",
        )


def anonymous_csrf(request: Request) -> tuple[str, str | None]:
    """(the token for an anonymous form, a new cookie value to set or None): the sign-in page's CSRF."""
    cookie = request.cookies.get(CSRF_COOKIE)
    new = None
    if not cookie:
        cookie = new = secrets.token_urlsafe(32)
    token = _sign(request, "anonymous", cookie)
    request.state.csrf_token = token
    return token, new


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Any, name: str, value: str, *, max_age: int | None) -> None:
    """HttpOnly, SameSite=Lax, Path=/, and Secure when the page came over https."""
    response.set_cookie(
        name, value, max_age=max_age, path="/", httponly=True, samesite="lax", secure=is_https(request)
    )


def clear_cookie(request: Request, response: Any, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=is_https(request))


def cookie_principal(request: Request, s: Session, require_csrf: bool = True) -> Principal | None:
    """The signed-in user of the session cookie, for API routes that scripts on the hub's pages call
    (fetch sends the cookie). With require_csrf (the default, and the only safe choice for anything
    that changes state or reads private data), the request must carry the page's CSRF token in
    X-CSRF-Token: without it the cookie is ignored (None), with a wrong one the request is refused."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    if not require_csrf:
        found = session_principal(s, token)
        return found[0] if found is not None else None
    sent = request.headers.get(CSRF_HEADER)
    if not sent:
        return None
    return csrf_session_principal(s, _secret(request), token, sent)


def api_principal(request: Request, s: Db) -> Principal:
    """An API route's caller: the Authorization header, else the session cookie with X-CSRF-Token, else
    anonymous."""
    if request.headers.get("authorization"):
        return authenticate(s, request.headers.get("authorization"))
    return cookie_principal(request, s, require_csrf=True) or Principal()


ApiCaller = Annotated[Principal, Depends(api_principal)]


def layout_context(request: Request) -> dict[str, Any]:
    user = getattr(request.state, "web_principal", None) or Principal()
    return {
        "user": user,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "base_url": str(request.base_url).rstrip("/"),
    }
