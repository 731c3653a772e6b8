"""Templates and the page response: one jinja2 environment (autoescape on), the layout's context."""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, PackageLoader, select_autoescape

# the account service refuses these names at creation, so the site's pages own those paths
from cove.server.auth.service import RESERVED_NAMES as RESERVED_NAMES


def _ago(value: dt.datetime | None) -> str:
    """ "3 days ago" for a naive-UTC timestamp."""
    if value is None:
        return ""
    seconds = max(0, int((dt.datetime.utcnow() - value).total_seconds()))
    for unit, size in (
        ("year", 31536000),
        ("month", 2592000),
        ("day", 86400),
        ("hour", 3600),
        ("minute", 60),
    ):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def _size(n: int | None) -> str:
    if n is None:
        return ""
    value = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def _count(n: int | None) -> str:
    n = n or 0
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 1000:
        return f"{n / 1000:.1f}k"
    return str(n)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=PackageLoader("cove.server.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = _ago
    env.filters["size"] = _size
    env.filters["count"] = _count
    return env


# every page: scripts only from this hub's /static (a card's HTML is sanitized too: this is the second wall),
# no plugins, forms and fetches only to this origin, images from this hub, data: (the sanitizer keeps raster
# types only) or https (cards' badges)
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: https:; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'self'"
)
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def page(
    request: Request, template: str, status_code: int = 200, headers: dict | None = None, **context: Any
):
    """An HTML response rendering template with the layout's context (the caller, the CSRF token, the
    hub's base URL) plus context."""
    from cove.server.web.session import layout_context

    ctx = layout_context(request)
    ctx.update(context)
    html = environment().get_template(template).render(request=request, **ctx)
    return HTMLResponse(html, status_code=status_code, headers={**PAGE_HEADERS, **(headers or {})})


def wants_html(request: Request) -> bool:
    """A browser asking for a page (Accept names text/html before JSON), not an API client: its errors are
    pages, a client's errors stay JSON with X-Error-Code."""
    if request.method not in ("GET", "HEAD", "POST"):
        return False
    path = request.url.path
    if path.startswith(("/api/", "/v1/", "/cove-lfs/")) or "/resolve/" in path or ".git/" in path:
        return False
    accept = request.headers.get("accept", "")
    return "text/html" in accept
