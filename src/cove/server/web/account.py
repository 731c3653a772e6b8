"""Accounts in the browser: sign in and out, access tokens, profile and password (/login, /logout,
/settings/*). Fixed paths: web/router.py registers this router before every page with path parameters."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from cove.errors import HubRequestError
from cove.server.auth import service as auth
from cove.server.deps import Db
from cove.server.web.forms import FormBody, see_other
from cove.server.web.render import page
from cove.server.web.session import (
    CSRF_COOKIE,
    CSRF_FIELD,
    SESSION_COOKIE,
    BrowserSession,
    FormRefused,
    WebCaller,
    anonymous_csrf,
    check_csrf,
    clear_cookie,
    safe_next,
    set_cookie,
    sign_in_redirect,
)
from cove.server.web.throttle import LoginThrottle

router = APIRouter(include_in_schema=False)

NO_STORE = {"Cache-Control": "no-store"}
_LOGIN_CODES = {400: "BadRequest", 401: "InvalidCredentials"}


def _throttle(request: Request) -> LoginThrottle:
    return request.app.state.login_throttle


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _sign_in_session(request: Request, s: Any, account: Any, response: Response) -> None:
    days = request.app.state.hub.settings.session_days
    token = auth.create_session(s, account, days=days)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=int(days * 86400))


# --- sign in and out ------------------------------------------------------------------------------


def _login_page(
    request: Request,
    *,
    status: int = 200,
    next_path: str = "/",
    username: str = "",
    error: str | None = None,
    expired: bool = False,
) -> Response:
    _token, new_cookie = anonymous_csrf(request)
    response = page(
        request,
        "account/login.html",
        status_code=status,
        headers={**NO_STORE, **({"X-Error-Code": _LOGIN_CODES[status]} if status in _LOGIN_CODES else {})},
        next_path=safe_next(next_path),
        username=username,
        error=error,
        expired=expired,
    )
    if new_cookie is not None:
        set_cookie(request, response, CSRF_COOKIE, new_cookie, max_age=None)
    return response


@router.get("/login")
def login_page(request: Request, caller: WebCaller, next: str = "/", expired: str | None = None) -> Response:
    if caller.session:
        return see_other(safe_next(next))
    return _login_page(request, next_path=next, expired=bool(expired))


@router.post("/login")
def login(request: Request, s: Db, caller: WebCaller, form: FormBody) -> Response:
    check_csrf(request, form.get(CSRF_FIELD), anonymous=True)
    username = form.get("username").strip()
    password = form.get("password")
    next_path = safe_next(form.get("next"))
    keys = (f"user:{username.lower()}", f"ip:{_client(request)}")
    wait = _throttle(request).retry_after(*keys)
    if wait:
        raise FormRefused(
            429,
            "Too many sign-in attempts",
            f"Too many wrong passwords for this user name or from your address: try again in {wait} seconds.",
            code="TooManyRequests",
            headers={"Retry-After": str(wait)},
        )
    if not username or not password:
        return _login_page(
            request,
            status=400,
            next_path=next_path,
            username=username,
            error="Enter your user name and password.",
        )
    account = auth.check_password(s, username, password)
    if account is None:
        _throttle(request).failed(*keys)
        return _login_page(
            request, status=401, next_path=next_path, username=username, error="Wrong user name or password."
        )
    _throttle(request).forget(keys[0])
    response = see_other(next_path)
    _sign_in_session(request, s, account, response)
    return response


@router.post("/logout")
def logout(request: Request, s: Db, caller: WebCaller, form: FormBody) -> Response:
    response = see_other("/")
    if caller.session:
        check_csrf(request, form.get(CSRF_FIELD))
        auth.end_session(s, request.cookies[SESSION_COOKIE])
    clear_cookie(request, response, SESSION_COOKIE)
    return response


# --- settings -------------------------------------------------------------------------------------


def _settings_page(request: Request, caller: Any) -> Response | None:
    """A redirect to sign in for anonymous callers; token callers are refused (see BrowserSession)."""
    if caller.name is None:
        return sign_in_redirect(request)
    if not caller.session:
        raise FormRefused(
            403,
            "Not allowed",
            "Account settings are managed from a signed-in browser: sign in at /login.",
            code="Forbidden",
        )
    return None


def _tokens_page(
    request: Request, s: Any, caller: Any, *, status: int = 200, new_token: str | None = None, **ctx: Any
) -> Response:
    tokens = auth.list_tokens(s, caller.name)
    return page(
        request,
        "account/tokens.html",
        status_code=status,
        headers=NO_STORE,
        tokens=tokens,
        new_token=new_token,
        section="tokens",
        **ctx,
    )


@router.get("/settings")
def settings_home(request: Request, caller: WebCaller) -> Response:
    return _settings_page(request, caller) or see_other("/settings/tokens")


@router.get("/settings/tokens")
def tokens_page(request: Request, s: Db, caller: WebCaller) -> Response:
    return _settings_page(request, caller) or _tokens_page(request, s, caller)


@router.post("/settings/tokens")
def create_token(request: Request, s: Db, caller: BrowserSession, form: FormBody) -> Response:
    check_csrf(request, form.get(CSRF_FIELD))
    name, role = form.get("name"), form.get("role", "read")
    try:
        token = auth.create_token(s, caller.name or "", name=auth.check_token_name(name), role=role)
    except HubRequestError as exc:
        return _tokens_page(request, s, caller, status=400, error=str(exc), name=name, role=role)
    return _tokens_page(request, s, caller, status=201, new_token=token, new_name=name.strip(), new_role=role)


@router.post("/settings/tokens/{token_id}/revoke")
def revoke_token(request: Request, s: Db, caller: BrowserSession, token_id: int, form: FormBody) -> Response:
    check_csrf(request, form.get(CSRF_FIELD))
    auth.revoke_token_id(s, caller.name or "", token_id)
    return see_other("/settings/tokens")


def _profile_page(request: Request, s: Any, caller: Any, *, status: int = 200, **ctx: Any) -> Response:
    account = auth.get_account(s, caller.name)
    return page(
        request,
        "account/profile.html",
        status_code=status,
        headers=NO_STORE,
        account=account,
        section="profile",
        **ctx,
    )


@router.get("/settings/profile")
def profile_page(request: Request, s: Db, caller: WebCaller, password: str | None = None) -> Response:
    return _settings_page(request, caller) or _profile_page(
        request, s, caller, password_saved=password == "changed"
    )


@router.post("/settings/profile")
def update_profile(request: Request, s: Db, caller: BrowserSession, form: FormBody) -> Response:
    check_csrf(request, form.get(CSRF_FIELD))
    try:
        auth.update_profile(s, caller.name or "", fullname=form.get("fullname"), email=form.get("email"))
    except HubRequestError as exc:
        s.rollback()
        return _profile_page(request, s, caller, status=400, profile_error=str(exc))
    return _profile_page(request, s, caller, profile_saved=True)


@router.post("/settings/password")
def change_password(request: Request, s: Db, caller: BrowserSession, form: FormBody) -> Response:
    """A new password ends every session of the user (other browsers are signed out); this browser gets a
    new one. The current password is checked under the sign-in rate limit."""
    check_csrf(request, form.get(CSRF_FIELD))
    user = caller.name or ""
    keys = (f"user:{user.lower()}", f"ip:{_client(request)}")
    wait = _throttle(request).retry_after(*keys)
    if wait:
        raise FormRefused(
            429,
            "Too many attempts",
            f"Too many wrong passwords: try again in {wait} seconds.",
            code="TooManyRequests",
            headers={"Retry-After": str(wait)},
        )
    account = auth.check_password(s, user, form.get("current"))
    if account is None:
        _throttle(request).failed(*keys)
        return _profile_page(request, s, caller, status=401, password_error="The current password is wrong.")
    new = form.get("new")
    if new != form.get("confirm"):
        return _profile_page(
            request, s, caller, status=400, password_error="The new password and its confirmation differ."
        )
    try:
        auth.set_password(s, user, new)
    except HubRequestError as exc:
        return _profile_page(request, s, caller, status=400, password_error=str(exc))
    response = see_other("/settings/profile?password=changed")
    _sign_in_session(request, s, account, response)
    return response
