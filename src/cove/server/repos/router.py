"""Repo routes: /api/{models,datasets,spaces}/{namespace}/{name}/..., create/delete/move, validate-yaml and
whoami. Thin: each route takes its guards (the repo, visible or writable, from the headers) first and its
typed body last, calls a service and returns a response model; services raise the domain errors that
server/errors.py turns into status codes. '%2F' inside a revision stays in it (server/rawpath.py)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from cove.errors import AuthenticationError, EntryNotFoundError, HubRequestError
from cove.server import (
    rawpath,  # noqa: F401  # registers the {x:seg} / {x:rpath} / {x:kind} convertors
    yamlcheck,
)
from cove.server.auth.service import get_account
from cove.server.body import iter_body, json_body
from cove.server.deps import (
    Caller,
    Db,
    HubDep,
    VisibleRepo,
    WritableRepo,
    Writer,
    base_url,
    flag,
    repo_url,
)
from cove.server.files import service as files
from cove.server.files.pipe import pipe_to
from cove.server.repos import schemas, service
from cove.server.repos.schemas import (
    CommitResponse,
    CreateRepoResponse,
    Empty,
    PreuploadResponse,
    RefsResponse,
    RepoSettingsResponse,
    UrlResponse,
    ValidateYamlResponse,
)
from cove.server.responses import SafeJSONResponse
from cove.store import DEFAULT_BRANCH, check_path

router = APIRouter()
REPO = "/api/{kind:kind}/{namespace:seg}/{name:seg}"

CreateRepoBody = Annotated[schemas.CreateRepoRequest, Depends(json_body(schemas.CreateRepoRequest))]
RepoRefBody = Annotated[schemas.RepoRef, Depends(json_body(schemas.RepoRef))]
MoveBody = Annotated[schemas.MoveRepoRequest, Depends(json_body(schemas.MoveRepoRequest))]
SettingsBody = Annotated[schemas.RepoSettingsRequest, Depends(json_body(schemas.RepoSettingsRequest))]
BranchBody = Annotated[schemas.CreateBranchRequest, Depends(json_body(schemas.CreateBranchRequest))]
TagBody = Annotated[schemas.CreateTagRequest, Depends(json_body(schemas.CreateTagRequest))]
PathsInfoBody = Annotated[schemas.PathsInfoRequest, Depends(json_body(schemas.PathsInfoRequest))]
PreuploadBody = Annotated[schemas.PreuploadRequest, Depends(json_body(schemas.PreuploadRequest))]
YamlBody = Annotated[
    schemas.ValidateYamlRequest, Depends(json_body(schemas.ValidateYamlRequest, limit="max_yaml_bytes"))
]


def _page(request: Request, items: list[Any], page_size: int) -> Response:
    """A page of items with an absolute Link header to the next one (cursor = offset)."""
    try:
        start = max(0, int(request.query_params.get("cursor", "0")))
    except ValueError as exc:
        raise HubRequestError("Invalid pagination cursor: pass the URL from the Link header as is.") from exc
    limit = page_size
    if "limit" in request.query_params:
        try:
            limit = max(1, min(page_size, int(request.query_params["limit"])))
        except ValueError as exc:
            raise HubRequestError(
                f"Invalid limit {request.query_params['limit']!r}: use an integer."
            ) from exc
    page = items[start : start + limit]
    headers = {}
    if start + limit < len(items):
        nxt = request.url.include_query_params(cursor=str(start + limit))
        headers["Link"] = f'<{nxt}>; rel="next"'
    return SafeJSONResponse(page, headers=headers)


# --- reading ----------------------------------------------------------------------------------------


@router.get(REPO)
@router.get(REPO + "/revision/{revision:seg}")
def repo_info(
    request: Request,
    repo: VisibleRepo,
    hub: HubDep,
    s: Db,
    revision: str = DEFAULT_BRANCH,
    blobs: str | None = None,
) -> SafeJSONResponse:
    commit_id = hub.store.resolve(s, repo, revision)
    out = service.info_json(hub.store, s, repo, commit_id, files_metadata=flag(blobs))
    if repo.type == "space":  # where the app is (gradio_client's Client("owner/name") goes to host)
        out.update(request.app.state.spaces.info_fields(repo.repo_id, base_url(request)))
    return SafeJSONResponse(out)


@router.get(REPO + "/tree/{revision:seg}")
@router.get(REPO + "/tree/{revision:seg}/{path:rpath}")
def tree(
    request: Request,
    repo: VisibleRepo,
    hub: HubDep,
    s: Db,
    revision: str,
    path: str = "",
    recursive: str | None = None,
) -> Response:
    commit_id = hub.store.resolve(s, repo, revision)
    path = path.strip("/")
    if path:
        check_path(path)
    listing = service.tree_listing(hub.store.tree(s, commit_id), path, recursive=flag(recursive))
    if listing is None:
        raise EntryNotFoundError(f"Folder {path!r} not found in {repo.repo_id!r} at {commit_id[:12]}.")
    return _page(request, listing, hub.settings.tree_page_size)


@router.post(REPO + "/paths-info/{revision:seg}")
def paths_info(repo: VisibleRepo, hub: HubDep, s: Db, revision: str, body: PathsInfoBody) -> SafeJSONResponse:
    commit_id = hub.store.resolve(s, repo, revision)
    for p in body.paths:
        check_path(p.strip("/"))
    return SafeJSONResponse(service.paths_info(hub.store.tree(s, commit_id), body.paths))


@router.get(REPO + "/refs", response_model=RefsResponse, response_model_exclude_none=True)
def refs(repo: VisibleRepo, hub: HubDep, s: Db, include_prs: str | None = None) -> Any:
    return service.refs_json(hub.store, s, repo, include_prs=flag(include_prs))


@router.get(REPO + "/commits/{revision:seg}")
@router.get(REPO + "/commits/{revision:seg}/{path:rpath}")
def commits(
    request: Request, repo: VisibleRepo, hub: HubDep, s: Db, revision: str, path: str = ""
) -> Response:
    items = service.commits_json(hub.store, s, repo, revision, path.strip("/"))
    return _page(request, items, hub.settings.list_page_size)


# --- writing ----------------------------------------------------------------------------------------


@router.post(REPO + "/branch/{branch:rpath}", response_model=Empty)
def create_branch(repo: WritableRepo, hub: HubDep, s: Db, branch: str, body: BranchBody) -> Empty:
    service.create_branch(hub.store, s, repo, branch, body)
    return Empty()


@router.delete(REPO + "/branch/{branch:rpath}", response_model=Empty)
def delete_branch(repo: WritableRepo, hub: HubDep, s: Db, branch: str) -> Empty:
    hub.store.delete_ref(s, repo, "branch", branch)
    return Empty()


@router.post(REPO + "/tag/{revision:rpath}", response_model=Empty)
def create_tag(repo: WritableRepo, hub: HubDep, s: Db, revision: str, body: TagBody) -> Empty:
    service.create_tag(hub.store, s, repo, revision, body)
    return Empty()


@router.delete(REPO + "/tag/{tag:rpath}", response_model=Empty)
def delete_tag(repo: WritableRepo, hub: HubDep, s: Db, tag: str) -> Empty:
    hub.store.delete_ref(s, repo, "tag", tag)
    return Empty()


@router.put(REPO + "/settings", response_model=RepoSettingsResponse)
def update_settings(repo: WritableRepo, hub: HubDep, s: Db, caller: Caller, body: SettingsBody) -> Any:
    return RepoSettingsResponse(private=service.update_settings(hub.store, s, caller, repo, body))


@router.post(REPO + "/preupload/{revision:seg}", response_model=PreuploadResponse)
def preupload(
    request: Request, repo: WritableRepo, hub: HubDep, s: Db, revision: str, body: PreuploadBody
) -> Any:
    commit_id = hub.store.resolve(s, repo, revision)
    answers = files.preupload(
        hub.settings,
        hub.store.tree(s, commit_id),
        body.files,
        user_agent=request.headers.get("user-agent", ""),
        override=request.headers.get("x-cove-upload-mode"),
        xet_disabled=request.headers.get("x-cove-client-xet", "").lower() in ("off", "disabled", "0"),
    )
    return PreuploadResponse(files=answers, commitOid=commit_id)


@router.post(
    REPO + "/commit/{revision:seg}",
    response_model=CommitResponse,
    openapi_extra={
        "requestBody": {
            "description": "NDJSON: a header line, then one line per operation",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        }
    },
)
async def commit(
    request: Request,
    repo: WritableRepo,
    hub: HubDep,
    s: Db,
    caller: Caller,
    revision: str,
    create_pr: str | None = None,
) -> Any:
    """The NDJSON commit. The guards ran first (the repo exists, the caller may write), so the body is read
    only for writers; it is parsed line by line in a worker thread as it arrives, each regular file going to
    the blob store as its line is complete, so neither memory nor a spool file holds the whole body."""
    if flag(create_pr):
        raise HubRequestError("Pull requests are not supported by Cove: commit to a branch instead.")
    settings = hub.settings
    body = iter_body(request, settings.max_upload_bytes, settings, setting="COVE_MAX_UPLOAD_BYTES")

    def apply(stream: Any) -> tuple[str, str]:
        return files.commit_ndjson(
            hub.store, s, repo, files.iter_lines(stream), author=caller.name or "anonymous", branch=revision
        )

    commit_id, title = await pipe_to(body, apply, check=lambda total: None)
    return CommitResponse(
        success=True,
        commitOid=commit_id,
        commitUrl=f"{repo_url(request, repo.type, repo.repo_id)}/commit/{commit_id}",
        commitMessage=title,
        hookOutput="",
        pullRequestUrl=None,
    )


# --- repos as a whole -------------------------------------------------------------------------------


@router.post("/api/repos/create", response_model=CreateRepoResponse)
def create_repo(request: Request, hub: HubDep, s: Db, caller: Writer, body: CreateRepoBody) -> Any:
    return service.create_repo(hub.store, s, caller, body, lambda t, r: repo_url(request, t, r))


@router.delete("/api/repos/delete", response_model=Empty)
def delete_repo(hub: HubDep, s: Db, caller: Writer, body: RepoRefBody) -> Empty:
    service.delete_repo(hub.store, s, caller, body)
    return Empty()


@router.post("/api/repos/move", response_model=UrlResponse)
def move_repo(request: Request, hub: HubDep, s: Db, caller: Writer, body: MoveBody) -> Any:
    repo = service.move_repo(hub.store, s, caller, body)
    return UrlResponse(url=repo_url(request, repo.type, repo.repo_id))


@router.post(
    "/api/validate-yaml",
    response_model=ValidateYamlResponse,
    responses={400: {"description": "The YAML is invalid", "model": ValidateYamlResponse}},
)
async def validate_yaml(hub: HubDep, body: YamlBody) -> Any:
    # a large YAML takes seconds of CPU: parsed away from the event loop and its GIL, with a time limit
    problem = await yamlcheck.check(body.content, timeout=hub.settings.yaml_timeout_seconds)
    if problem is not None:
        return SafeJSONResponse({"errors": [{"message": problem}], "error": problem}, status_code=400)
    return ValidateYamlResponse(errors=[], warnings=[])


@router.get("/api/whoami-v2")
def whoami(request: Request, s: Db, caller: Caller) -> Response:
    if caller.name is None:
        raise AuthenticationError("Invalid credentials in Authorization header")
    account = get_account(s, caller.name)
    assert account is not None
    return SafeJSONResponse(
        {
            "type": "user",
            "id": f"{account.id:024x}",
            "name": caller.name,
            "fullname": caller.fullname,
            "email": caller.email,
            "emailVerified": caller.email is not None,
            "isPro": False,
            "canPay": False,
            "avatarUrl": "",
            "isAdmin": caller.is_admin,
            "orgs": [
                {"type": "org", "name": org, "fullname": org, "roleInOrg": role}
                for org, role in sorted(caller.orgs.items())
            ],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": caller.token_name, "role": caller.token_role},
            },
            "url": f"{base_url(request)}/{caller.name}",
        }
    )
