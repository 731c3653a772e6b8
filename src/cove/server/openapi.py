"""The published OpenAPI schema (/api/openapi.json), made to describe what the server really answers:
one operation id per method, the JSON error body every failure carries, and binary file responses."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

_ERROR_STATUSES = {
    "400": "Bad request: malformed input, invalid path or name",
    "401": "Missing or invalid token",
    "403": "Authenticated but not allowed",
    "404": "Repo, revision, file or route not found (private repos included)",
    "405": "Method not allowed on this path",
    "408": "The request body arrived too slowly",
    "409": "Already exists",
    "412": "Stale parentCommit",
    "413": "The request body is over this endpoint's limit",
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


def api_routes(routes: Iterable[Any]) -> Iterator[APIRoute]:
    """Every APIRoute, those of included routers too (FastAPI keeps them inside the included router)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from api_routes(inner.routes)
        elif isinstance(route, APIRoute):
            yield route


def _body_models(app: FastAPI) -> dict[tuple[str, str], tuple[type[BaseModel], str]]:
    """(path, method) -> (request model, content type) of the routes whose typed body is read by a
    `json_body` dependency (after the guards), which FastAPI itself does not see as a body."""
    found: dict[tuple[str, str], tuple[type[BaseModel], str]] = {}
    for route in api_routes(app.routes):
        stack = list(route.dependant.dependencies)
        while stack:
            dep = stack.pop()
            model = getattr(dep.call, "body_model", None)
            if model is not None:
                for method in route.methods or ():
                    found[(route.path_format, method.lower())] = (model, dep.call.media_type)  # type: ignore[union-attr]
            stack.extend(dep.dependencies)
    return found


def _add_body(spec: dict[str, Any], op: dict[str, Any], model: type[BaseModel], media_type: str) -> None:
    schemas = spec["components"]["schemas"]
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema
    ref = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    content = {media_type: ref}
    if model.__name__ == "PathsInfoRequest":  # huggingface_hub posts it as a form
        content["application/x-www-form-urlencoded"] = ref
    op["requestBody"] = {"required": True, "content": content}


def install(app: FastAPI) -> None:
    def schema() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        with warnings.catch_warnings():  # FastAPI warns of the duplicate ids that the loop below fixes
            warnings.filterwarnings("ignore", message="Duplicate Operation ID")
            spec = get_openapi(title=app.title, version=app.version, routes=app.routes)
        spec.setdefault("components", {}).setdefault("schemas", {})["Error"] = _ERROR_SCHEMA
        error_ref = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
        bodies = _body_models(app)
        for path, item in spec.get("paths", {}).items():
            for method, op in item.items():
                # FastAPI gives every method of a multi-method route the same id; clients need them unique
                op["operationId"] = f"{op.get('operationId', path)}_{method}"
                if (path, method) in bodies:
                    _add_body(spec, op, *bodies[(path, method)])
                responses = op.setdefault("responses", {})
                for status, description in _ERROR_STATUSES.items():
                    responses[status] = {"description": description, "content": error_ref}
                if op.pop("x-file-bytes", False) or (path, method) == ("/cove-lfs/{oid}", "get"):
                    _file_responses(responses)
                elif op.pop("x-lfs-batch", False):
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
