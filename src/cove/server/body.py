"""Request bodies, bounded: each endpoint has a cap, checked from Content-Length before the first byte is
read and again while a chunked body streams in; a read that waits too long for bytes, or a body that
trickles in below the minimum rate, ends the request (408).

Routes read their bodies through these functions only, and only after the caller is authenticated and
authorized from the headers: FastAPI would read a declared body parameter before any dependency runs, so
typed bodies come from the `json_body` dependency, listed after the guards in the route's signature.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar, get_origin
from urllib.parse import parse_qs

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from cove.errors import (
    HubRequestError,
    InvalidRequestBodyError,
    PayloadTooLargeError,
    RequestBodyTimeoutError,
)
from cove.server.settings import Settings

M = TypeVar("M", bound=BaseModel)


def declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length")
    if value is None:
        return None
    if not value.strip().isdigit():
        raise HubRequestError(f"Invalid Content-Length {value!r}: send a byte count.")
    return int(value)


def check_declared(request: Request, limit: int, setting: str) -> int | None:
    """The Content-Length, refused (413) when over limit: no byte of the body has been read yet."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise PayloadTooLargeError(
            f"Request body of {length} bytes is over the {_limit_name(setting)} of {limit} bytes ({setting})."
        )
    return length


def _limit_name(setting: str) -> str:
    return "upload limit" if "UPLOAD" in setting else "request body limit of this endpoint"


async def iter_body(
    request: Request, limit: int, settings: Settings, *, setting: str = "COVE_MAX_JSON_BYTES"
) -> AsyncIterator[bytes]:
    """The body's chunks as they arrive, at most limit bytes in all."""
    length = check_declared(request, limit, setting)
    loop = asyncio.get_running_loop()
    start = loop.time()
    received = 0
    chunks = request.stream().__aiter__()
    while True:
        # the deadline grows with the size (announced, or received so far for a chunked body)
        size = length if length is not None else received
        deadline = start + settings.body_deadline_seconds + size / settings.body_min_bytes_per_second
        wait = min(settings.body_idle_timeout_seconds, deadline - loop.time())
        try:
            if wait <= 0:
                raise TimeoutError
            chunk = await asyncio.wait_for(chunks.__anext__(), wait)
        except StopAsyncIteration:
            return
        except TimeoutError as exc:
            raise RequestBodyTimeoutError(
                f"The request body arrived too slowly ({received} bytes in {loop.time() - start:.0f} s): "
                "send it at a steady rate (COVE_BODY_IDLE_TIMEOUT_SECONDS, COVE_BODY_MIN_BYTES_PER_SECOND)."
            ) from exc
        received += len(chunk)
        if received > limit:
            raise PayloadTooLargeError(
                f"Request body is over the {_limit_name(setting)} of {limit} bytes ({setting})."
            )
        if chunk:
            yield chunk


async def read_body(
    request: Request, limit: int, settings: Settings, *, setting: str = "COVE_MAX_JSON_BYTES"
) -> bytes:
    return b"".join([chunk async for chunk in iter_body(request, limit, settings, setting=setting)])


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "body"


def parse_model(
    model: type[M], body: bytes, content_type: str = "application/json", what: str = "the request body"
) -> M:
    """A request model from a JSON (or urlencoded form) body; wrong types are a 422 naming the field."""
    data: Any
    if content_type.startswith("application/x-www-form-urlencoded"):
        form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        data = {}
        for key, values in form.items():
            field = model.model_fields.get(key)
            is_list = field is not None and get_origin(field.annotation) is list
            data[key] = values if is_list else values[-1]
    elif not body.strip():
        data = {}
    else:
        try:
            data = json.loads(body)
        except ValueError as exc:  # UnicodeDecodeError included
            raise HubRequestError(f"Malformed JSON in {what}: {exc}. Send a JSON object.") from exc
    if not isinstance(data, dict):
        raise InvalidRequestBodyError(f"The request body must be a JSON object, got a {type(data).__name__}.")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_field_name(err['loc'])!r}: {err['msg']} (got {err.get('input')!r:.80})"
            for err in exc.errors()[:5]
        )
        raise InvalidRequestBodyError(f"Invalid {what.removeprefix('the ')}: {problems}.") from exc


def json_body(
    model: type[M],
    *,
    limit: str = "max_json_bytes",
    media_type: str = "application/json",
    what: str = "the request body",
) -> Callable[[Request], Coroutine[Any, Any, M]]:
    """A dependency that reads the body (capped by the named setting) and validates it into model. Put it
    after the route's guards: dependencies run in signature order, so nothing is read for a caller the
    guards refuse."""

    async def read(request: Request) -> M:
        settings: Settings = request.app.state.hub.settings
        raw = await read_body(request, getattr(settings, limit), settings, setting=f"COVE_{limit.upper()}")
        # parsing a capped body is quick, but a few MB of JSON still should not stall the event loop
        return await run_in_threadpool(
            parse_model, model, raw, request.headers.get("content-type", "application/json"), what
        )

    read.__name__ = f"read_{model.__name__}"
    read.body_model = model  # type: ignore[attr-defined]  # server/openapi.py publishes it as the body
    read.media_type = media_type  # type: ignore[attr-defined]
    return read
