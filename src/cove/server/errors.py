"""One place that turns domain errors into HTTP status, X-Error-Code and a JSON message."""

from __future__ import annotations

import json
import re

from fastapi import FastAPI, Request, Response

from cove.errors import (
    AuthenticationError,
    CommitConflictError,
    EntryNotFoundError,
    HubError,
    HubPermissionError,
    HubRequestError,
    InvalidRequestBodyError,
    PayloadTooLargeError,
    RepoExistsError,
    RepoNotFoundError,
    RequestBodyTimeoutError,
    RevisionNotFoundError,
)
from cove.server.responses import SafeJSONResponse

# most specific first
_STATUS: list[tuple[type[Exception], int, str | None]] = [
    (RepoNotFoundError, 404, "RepoNotFound"),
    (RevisionNotFoundError, 404, "RevisionNotFound"),
    (EntryNotFoundError, 404, "EntryNotFound"),
    (AuthenticationError, 401, "InvalidCredentials"),
    (HubPermissionError, 403, "Forbidden"),
    (RepoExistsError, 409, "Conflict"),
    (CommitConflictError, 412, "StaleParentCommit"),
    (PayloadTooLargeError, 413, "PayloadTooLarge"),
    (RequestBodyTimeoutError, 408, "RequestTimeout"),
    (InvalidRequestBodyError, 422, "UnprocessableEntity"),
    (HubRequestError, 400, "BadRequest"),
    (HubError, 400, "BadRequest"),
]

# every error response carries a code, also those built directly by routes
_DEFAULT_CODES = {
    400: "BadRequest",
    401: "InvalidCredentials",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    408: "RequestTimeout",
    409: "Conflict",
    412: "StaleParentCommit",
    413: "PayloadTooLarge",
    416: "RangeNotSatisfiable",
    422: "UnprocessableEntity",
}


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    extra_headers: dict | None = None,
    extra_body: dict | None = None,
) -> SafeJSONResponse:
    # a header value may hold no control characters (a CR from a hostile path would break the response)
    clean = re.sub(r"[\x00-\x1f\x7f]", " ", message).encode("latin-1", "replace").decode("latin-1")
    headers = {"X-Error-Message": clean[:1000]}
    code = code or _DEFAULT_CODES.get(status)
    if code:
        headers["X-Error-Code"] = code
    headers.update(extra_headers or {})
    return SafeJSONResponse({"error": message, **(extra_body or {})}, status_code=status, headers=headers)


_TITLES = {
    400: "Bad request",
    401: "Sign in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Method not allowed",
    408: "Request timed out",
    409: "Already exists",
    413: "Too large",
    422: "Invalid input",
    429: "Too many requests",
    503: "Busy",
}


def negotiated(request: Request, response: SafeJSONResponse, message: str) -> Response:
    """A browser gets the error as a page (same status and X-Error-Code); an API client keeps the JSON."""
    from cove.server.web.render import page, wants_html

    if not wants_html(request):
        return response
    status = response.status_code
    headers = {k: v for k, v in response.headers.items() if k.lower().startswith(("x-error", "retry-after"))}
    return page(
        request,
        "error.html",
        status_code=status,
        headers=headers,
        status_code_value=status,
        title=_TITLES.get(status, "Error"),
        message=message,
    )


def install(app: FastAPI) -> None:
    async def handle_hub_error(request: Request, exc: Exception) -> Response:
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                headers = dict(getattr(exc, "headers", None) or {})
                if status in (408, 413):
                    # the rest of the body is never read: the connection cannot carry another request
                    headers["Connection"] = "close"
                # fields a client reads from the error besides the message (a 409's "url")
                response = error_response(status, str(exc), code, headers, getattr(exc, "body", None))
                return negotiated(request, response, str(exc))
        raise exc  # pragma: no cover

    async def handle_bad_json(request: Request, exc: Exception) -> SafeJSONResponse:
        return error_response(400, f"Malformed JSON in the request body: {exc}. Send a valid JSON document.")

    async def handle_validation(request: Request, exc: Exception) -> SafeJSONResponse:
        return error_response(400, f"Invalid request: {exc}")

    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    async def handle_http(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        message = str(exc.detail)
        if exc.status_code == 404 and message == "Not Found":
            message = f"No page or route {request.method} {request.url.path}."
        return negotiated(request, error_response(exc.status_code, message), message)

    from sqlalchemy.exc import OperationalError

    async def handle_busy(request: Request, exc: Exception) -> SafeJSONResponse:
        # SQLite refuses a write whose read snapshot went stale; the client retries 503s with backoff
        return error_response(
            503, "The hub database is busy; retry shortly.", "Busy", extra_headers={"Retry-After": "1"}
        )

    async def handle_nesting(request: Request, exc: Exception) -> SafeJSONResponse:
        # json.loads on a body like "[[[[..." recurses past the interpreter's limit
        return error_response(400, "The request body is nested too deeply: send a flat JSON document.")

    app.add_exception_handler(RecursionError, handle_nesting)
    app.add_exception_handler(OperationalError, handle_busy)
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    app.add_exception_handler(PoolTimeoutError, handle_busy)  # every pooled connection in use: retry
    app.add_exception_handler(RequestValidationError, handle_validation)
    app.add_exception_handler(HTTPException, handle_http)
    app.add_exception_handler(HubError, handle_hub_error)
    app.add_exception_handler(json.JSONDecodeError, handle_bad_json)
