"""The inference API's errors and the one function that turns any error into its answer.

Every error answers ``{"error": message, "error_type": kind}`` (the shape huggingface_hub's InferenceClient
and TGI clients parse: ``validation``, ``generation``, ``overloaded``, ...), with the hub's ``X-Error-Code``
and ``X-Error-Message`` headers. A stream that fails after its first event carries the same object as its
last ``data:`` event (both clients raise it).
"""

from __future__ import annotations

import logging
from typing import Any

from cove.errors import (
    AuthenticationError,
    CoveError,
    GenerationError,
    GenerationInputError,
    HubPermissionError,
    HubRequestError,
    PayloadTooLargeError,
    PipelineError,
    QueueFullError,
    RepoNotFoundError,
    RequestBodyTimeoutError,
    RevisionNotFoundError,
    TokenizerError,
)

log = logging.getLogger("cove.server.inference")


class InferenceError(CoveError):
    status = 500
    error_type = "unknown"
    code: str | None = None

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.headers = dict(headers or {})


class InferenceInputError(InferenceError, ValueError):
    """The request is malformed: bad JSON, wrong types, unknown parameters, inputs over the model's length."""

    status = 422
    error_type = "validation"
    code = "UnprocessableEntity"


class UnservableTaskError(InferenceError, ValueError):
    """The model's task (or the task asked for) is not one Cove serves for this model."""

    status = 400
    error_type = "unsupported_task"
    code = "BadRequest"


class ModelOverloadedError(InferenceError):
    """The model's queue is full: retry after ``retry_after`` seconds."""

    status = 429
    error_type = "overloaded"
    code = "TooManyRequests"

    def __init__(self, message: str, *, retry_after: float = 1.0):
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)})
        self.retry_after = seconds


class ModelLoadError(InferenceError, RuntimeError):
    """The model's files did not load (an unsupported architecture, broken weights, ...)."""

    status = 500
    error_type = "load"
    code = "ModelLoadFailed"


class InferenceFailedError(InferenceError, RuntimeError):
    """The model raised while computing (generation failures: TGI's 424)."""

    status = 424
    error_type = "generation"
    code = "InferenceFailed"


# hub and library errors met on the way, most specific first: (kind, status, error_type, X-Error-Code)
_KNOWN: list[tuple[type[BaseException], int, str, str]] = [
    (RepoNotFoundError, 404, "not_found", "RepoNotFound"),
    (RevisionNotFoundError, 404, "not_found", "RevisionNotFound"),
    (AuthenticationError, 401, "authentication", "InvalidCredentials"),
    (HubPermissionError, 403, "authentication", "Forbidden"),
    (PayloadTooLargeError, 413, "validation", "PayloadTooLarge"),
    (RequestBodyTimeoutError, 408, "validation", "RequestTimeout"),
    (HubRequestError, 422, "validation", "UnprocessableEntity"),
    (PipelineError, 422, "validation", "UnprocessableEntity"),
    (GenerationError, 422, "validation", "UnprocessableEntity"),
    (TokenizerError, 422, "validation", "UnprocessableEntity"),
]


def classify(exc: BaseException) -> tuple[int, str, str | None, dict[str, str]]:
    """(status, error_type, X-Error-Code, extra headers) for an error raised while serving a request."""
    if isinstance(exc, InferenceError):
        return exc.status, exc.error_type, exc.code, exc.headers
    if isinstance(exc, QueueFullError):  # the continuous batcher's rows and queue are taken
        full = ModelOverloadedError(str(exc), retry_after=exc.retry_after)
        return full.status, full.error_type, full.code, full.headers
    if isinstance(exc, GenerationInputError):
        return 422, "validation", "UnprocessableEntity", {}
    for kind, status, error_type, code in _KNOWN:
        if isinstance(exc, kind):
            headers = {"Connection": "close"} if status in (408, 413) else {}
            return status, error_type, code, headers
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    if isinstance(exc, OperationalError | PoolTimeoutError):
        return 503, "overloaded", "Busy", {"Retry-After": "1"}
    return 500, "unknown", "InternalError", {}


def message_of(exc: BaseException) -> str:
    if isinstance(exc, CoveError | ValueError) or classify(exc)[0] < 500:
        return str(exc)
    return f"Internal error while serving the request ({type(exc).__name__}: {exc})."


def error_answer(exc: BaseException) -> Any:
    """The JSON response for exc (a 5xx of an unexpected kind is logged with its traceback)."""
    from cove.server.errors import error_response

    status, error_type, code, headers = classify(exc)
    if status == 500 and not isinstance(exc, InferenceError):
        log.error("inference request failed", exc_info=exc)
    message = message_of(exc)
    return error_response(status, message, code, headers, {"error_type": error_type})


def error_event(exc: BaseException) -> dict[str, Any]:
    """The last event of a stream that failed after it started."""
    if classify(exc)[0] >= 500 and not isinstance(exc, InferenceError):
        log.error("inference stream failed", exc_info=exc)
    status, error_type, _, _ = classify(exc)
    if status >= 500 and error_type == "unknown":
        error_type = "generation"
    return {"error": message_of(exc), "error_type": error_type}
