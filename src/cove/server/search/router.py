"""GET /api/models, /api/datasets, /api/spaces: what list_models, list_datasets and list_spaces call."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from cove.server.deps import PLURAL, Caller, Db, HubDep
from cove.server.errors import error_response
from cove.server.responses import SafeJSONResponse
from cove.server.search import service
from cove.server.search.schemas import ListQuery, RepoSummary

router = APIRouter()


@router.get("/api/{kind}", response_model=list[RepoSummary], response_model_exclude_none=True)
def list_repos(
    kind: str, params: Annotated[ListQuery, Query()], request: Request, hub: HubDep, s: Db, caller: Caller
) -> Response:
    if kind not in PLURAL:
        return error_response(404, f"No route /api/{kind}: use /api/models, /api/datasets or /api/spaces.")
    items, cursor = service.list_page(hub, s, caller, PLURAL[kind], params)
    headers = {}
    if cursor is not None:
        headers["Link"] = f'<{request.url.include_query_params(cursor=cursor)}>; rel="next"'
    return SafeJSONResponse(items, headers=headers)
