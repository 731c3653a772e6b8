"""The published OpenAPI schema (/api/openapi.json), made to describe what the server really answers:
one operation id per method, the JSON error body every failure carries, and binary file responses."""

from __future__ import annotations

import warnings
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

_ERROR_STATUSES = {
    "400": "Bad request: malformed input, invalid path or name",
    "401": "Missing or invalid token",
    "403": "Authenticated but not allowed",
    "404": "Repo, revision, file or route not found (private repos included)",
    "409": "Already exists",
    "412": "Stale parentCommit",
    "413": "Over the upload limit",
    "416": "Range not satisfiable",
    "422": "Unprocessable content",
    "503": "Database busy: retry",
}
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {"error": {"type": "string"}},
    "required": ["error"],
}
_BINARY: dict[str, Any] = {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
_JSON_ANY: dict[str, Any] = {"application/json": {"schema": {}}}


def _file_responses(responses: dict[str, Any]) -> None:
    responses["200"] = {"description": "The file's bytes", "content": _BINARY}
    responses["206"] = {"description": "The requested byte range", "content": _BINARY}
    responses["302"] = {"description": "Redirect to the object store (COVE_S3_PRESIGN_DOWNLOADS)"}


def install(app: FastAPI) -> None:
    def schema() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():  # FastAPI warns of the duplicate ids that the loop below fixes
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
        error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        for path, item in spec.get("paths", {}).items():
            for method, op in item.items():
                # FastAPI gives every method of a multi-method route the same id; clients need them unique
                op["operationId"] = f"{op.get('operationId', path)}_{method}"
                responses = op.setdefault("responses", {})
                for status, description in _ERROR_STATUSES.items():
                    responses[status] = {"description": description, "content": error_ref}
                if (path, method) in (("/{rest}", "get"), ("/{rest}", "head"), ("/cove-lfs/{oid}", "get")):
                    _file_responses(responses)
                elif path == "/{rest}" and method == "post":  # the git-LFS batch API
                    responses["200"] = {
                        "description": "LFS batch answer",
                        "content": {"application/vnd.git-lfs+json": {"schema": {"type": "object"}}},
                    }
                elif path == "/cove-lfs/{oid}" and method == "put":
                    responses["200"] = {"description": "Stored"}
                else:
                    responses.setdefault("200", {"description": "OK", "content": _JSON_ANY})
        app.openapi_schema = spec
        return spec

    app.openapi = schema  # type: ignore[method-assign]
