"""Secrets never reach a log line: signed LFS URLs carry `sig=` in their query, and a proxy or client may
put a token there too.

Two layers, so neither the log configuration nor the log level the operator picks matters:
`RedactQueryMiddleware` rewrites the query string the ASGI server's access log reads from the request's
scope once the response has started (the route has read it by then), and `RedactSecrets`, a logging
filter on uvicorn's and Cove's loggers, rewrites any record that still holds one.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SECRET_KEYS = (
    "sig",
    "signature",
    "token",
    "access_token",
    "x-amz-signature",
    "x-amz-credential",
    "x-amz-security-token",
)
_SECRET = re.compile(r"(?i)(^|[?&;\s])(" + "|".join(re.escape(k) for k in SECRET_KEYS) + r")=[^&\s\"']*")
REDACTED = "REDACTED"


def redact(text: str) -> str:
    return _SECRET.sub(lambda m: f"{m.group(1)}{m.group(2)}={REDACTED}", text)


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("latin-1")).encode("latin-1")
    return value


class RedactSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(_redact_value(a) for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: _redact_value(v) for k, v in record.args.items()}
        return True


LOGGERS = ("uvicorn", "uvicorn.access", "uvicorn.error", "gunicorn.access", "gunicorn.error", "cove")


def install_filter() -> None:
    """Add the filter to the server's loggers (and every cove.* logger that exists); idempotent. Filters
    stay on a logger when logging is configured later (uvicorn's dictConfig keeps them)."""
    names = set(LOGGERS) | {n for n in logging.root.manager.loggerDict if n.startswith("cove.")}
    for name in sorted(names):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactSecrets) for f in logger.filters):
            logger.addFilter(RedactSecrets())


class RedactQueryMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope.get("query_string"):
            await self.app(scope, receive, send)
            return

        async def send_redacted(message: Message) -> None:
            if message["type"] == "http.response.start":
                # the server's own scope dict: its access log line is written from this
                scope["query_string"] = _redact_value(scope["query_string"])
            await send(message)

        await self.app(scope, receive, send_redacted)
