"""Routing on the raw path, so '%2F' inside one segment stays inside it.

huggingface_hub quotes revisions with safe="" (branch "feature/x" travels as "feature%2Fx"), while the ASGI
server decodes the path before routing, which would split that segment in two. `RawPathMiddleware` rebuilds
`scope["path"]` from the raw path, decoding every escape except '%2F' and '%25'; the route convertors below
then decode those two inside each parameter, so `{revision:seg}` is "feature/x" and `{path:rpath}` keeps its
real '/' separators. Every path parameter of the hub's routes uses them.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote, unquote

from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Receive, Scope, Send

_KEPT = re.compile(r"(%2[fF]|%25)")


def partly_decoded(raw: str) -> str:
    """The path with every escape decoded except '%2F' (a slash inside a segment) and '%25' (a '%')."""
    parts = _KEPT.split(raw)
    return "".join(p.upper() if i % 2 else unquote(p) for i, p in enumerate(parts))


class RawPathMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = scope.get("raw_path") if scope["type"] == "http" else None
        if raw:
            text = raw.decode("latin-1").split("?", 1)[0]
            # only when the server's decoding is the plain one, so a proxy's rewrite is left alone
            if unquote(text) == scope["path"]:
                scope = {**scope, "path": partly_decoded(text)}
        await self.app(scope, receive, send)


class SegmentConvertor(Convertor[str]):
    """One path segment, '%2F' inside it included."""

    regex = "[^/]+"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="")


class RestConvertor(Convertor[str]):
    """The rest of the path: segments with their '/' separators (and '%2F' inside them)."""

    regex = ".*"

    def convert(self, value: str) -> str:
        return unquote(value)

    def to_string(self, value: str) -> str:
        return quote(value, safe="/")


class KindConvertor(Convertor[str]):
    """The repo kind in /api/{kind}/...: models, datasets or spaces."""

    regex = "models|datasets|spaces"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: Any) -> str:
        return str(value)


register_url_convertor("seg", SegmentConvertor())
register_url_convertor("rpath", RestConvertor())
register_url_convertor("kind", KindConvertor())
