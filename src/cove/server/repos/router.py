"""Repo routes under /api/{models,datasets,spaces}/{namespace}/{name}/..., dispatched on the raw path so
'%2F' inside a revision or branch name stays part of it."""

from __future__ import annotations

import json
import tempfile
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cove.errors import EntryNotFoundError, HubRequestError, RepoNotFoundError
from cove.server.auth.service import Principal, get_account
from cove.server.deps import (
    PLURAL,
    Caller,
    Db,
    HubDep,
    base_url,
    iso,
    raw_segments,
    repo_url,
    unquote_segment,
)
from cove.server.errors import error_response
from cove.server.files import service as files
from cove.server.repos import service
from cove.store import RepoRow, card_from_readme, check_path, check_repo_type, parse_yaml, split_front_matter

router = APIRouter()


async def _json(request: Request) -> dict[str, Any]:
    return _parse_json(await request.body())


def _parse_json(body: bytes) -> dict[str, Any]:
    if not body.strip():
        return {}
    try:
        data = json.loads(body)
    except ValueError as exc:
        raise HubRequestError(f"Malformed JSON in the request body: {exc}.") from exc
    if not isinstance(data, dict):
        raise HubRequestError("The request body must be a JSON object.")
    return data


def _visible_repo(hub: HubDep, s: Db, caller: Principal, repo_type: str, repo_id: str) -> RepoRow:
    repo = hub.store.get_repo(s, repo_type, repo_id)
    caller.check_read(repo)
    return repo


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
    return JSONResponse(page, headers=headers)


async def repo_dispatch(
    kind: str, rest: str, request: Request, hub: HubDep, s: Db, caller: Caller
) -> Response:
    # read the body here, then do the blocking database and blob work off the event loop
    segs = raw_segments(request)
    if request.method == "POST" and len(segs) > 5 and segs[4] == "commit":
        # NDJSON commits can be large: spool them to disk and parse line by line
        with tempfile.SpooledTemporaryFile(max_size=32 * 1024**2, dir=hub.store.tmp_dir) as spool:
            await _spool_limited(request, hub.settings.max_upload_bytes, spool)
            spool.seek(0)
            return await run_in_threadpool(_dispatch, kind, request, spool, hub, s, caller)
    body = b""
    if request.method in ("POST", "PUT", "DELETE"):
        body = await _read_limited(request, hub.settings.max_upload_bytes)
    return await run_in_threadpool(_dispatch, kind, request, body, hub, s, caller)


def _dispatch(kind: str, request: Request, body: Any, hub: HubDep, s: Db, caller: Caller) -> Response:
    """Every /api/{kind}/ns/name/... route; body is the request's bytes (a spooled file for commits)."""
    if kind not in PLURAL:
        return error_response(404, f"No route /api/{kind}: use /api/models, /api/datasets or /api/spaces.")
    repo_type = PLURAL[kind]
    segs = raw_segments(request)[2:]
    if len(segs) < 2:
        raise RepoNotFoundError(f"Invalid repo id {'/'.join(segs)!r}: expected 'namespace/name'.")
    repo_id = f"{unquote_segment(segs[0])}/{unquote_segment(segs[1])}"
    action = segs[2] if len(segs) > 2 else ""
    args = [unquote_segment(x) for x in segs[3:]]
    method = request.method
    store = hub.store

    if action in ("", "revision") and method == "GET":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        commit_id = store.resolve(s, repo, args[0] if args else None)
        files_metadata = request.query_params.get("blobs", "").lower() in ("1", "true")
        return JSONResponse(service.info_json(store, s, repo, commit_id, files_metadata=files_metadata))

    if action == "tree" and method == "GET":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        commit_id = store.resolve(s, repo, args[0] if args else None)
        path = "/".join(args[1:]).strip("/")
        if path:
            check_path(path)
        recursive = request.query_params.get("recursive", "").lower() in ("1", "true")
        listing = service.tree_listing(store.tree(s, commit_id), path, recursive=recursive)
        if listing is None:
            raise EntryNotFoundError(f"Folder {path!r} not found in {repo_id!r} at {commit_id[:12]}.")
        return _page(request, listing, hub.settings.tree_page_size)

    if action == "paths-info" and method == "POST":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        commit_id = store.resolve(s, repo, args[0] if args else None)
        if request.headers.get("content-type", "").startswith("application/json"):
            paths = [str(p) for p in _parse_json(body).get("paths", [])]
        else:  # the client posts an urlencoded form: paths=a&paths=b
            form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            paths = form.get("paths", [])
        for p in paths:
            check_path(p.strip("/"))
        return JSONResponse(service.paths_info(store.tree(s, commit_id), paths))

    if action == "refs" and method == "GET":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        include_prs = request.query_params.get("include_prs", "").lower() in ("1", "true")
        return JSONResponse(service.refs_json(store, s, repo, include_prs=include_prs))

    if action == "commits" and method == "GET":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        file_path = "/".join(args[1:]).strip("/") or None
        if file_path:
            check_path(file_path)
        history = store.history(s, repo, args[0] if args else None, file_path)
        items = [
            {
                "id": c.id,
                "title": c.title,
                "message": c.message,
                "authors": [{"user": c.author, "avatar": None}],
                "date": iso(c.created_at),
            }
            for c in history
        ]
        return _page(request, items, hub.settings.list_page_size)

    if action == "branch" and args and method in ("POST", "DELETE"):
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        caller.check_write(repo)
        name = "/".join(args)
        if method == "DELETE":
            store.delete_ref(s, repo, "branch", name)
        else:
            store.create_ref(s, repo, "branch", name, _parse_json(body).get("startingPoint"))
        return JSONResponse({})

    if action == "tag" and args and method in ("POST", "DELETE"):
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        caller.check_write(repo)
        if method == "DELETE":
            store.delete_ref(s, repo, "tag", "/".join(args))
        else:
            data = _parse_json(body)
            tag = data.get("tag")
            if not isinstance(tag, str):
                raise HubRequestError("Creating a tag needs a JSON body with 'tag': the tag's name.")
            store.create_ref(s, repo, "tag", tag, args[0], message=str(data.get("message") or ""))
        return JSONResponse({})

    if action == "settings" and method == "PUT":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        caller.check_write(repo)
        data = _parse_json(body)
        if data.get("gated") not in (None, False, "false"):
            raise HubRequestError(f"Gated repos are not supported by Cove (gated={data['gated']!r}).")
        private = data.get("private")
        if "visibility" in data:
            if data["visibility"] not in ("public", "private"):
                raise HubRequestError(f"Unknown visibility {data['visibility']!r}: use public or private.")
            private = data["visibility"] == "private"
        if private is not None and bool(private) != repo.private:
            caller.check_admin(repo)
            repo.private = bool(private)
        s.commit()
        return JSONResponse({"private": repo.private})

    if action == "preupload" and method == "POST":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        caller.check_write(repo)
        commit_id = store.resolve(s, repo, args[0] if args else None)
        tree = store.tree(s, commit_id)
        answers = files.preupload(
            hub.settings,
            tree,
            _parse_json(body).get("files"),
            user_agent=request.headers.get("user-agent", ""),
            override=request.headers.get("x-cove-upload-mode"),
        )
        return JSONResponse({"files": answers, "commitOid": commit_id})

    if action == "commit" and method == "POST":
        repo = _visible_repo(hub, s, caller, repo_type, repo_id)
        caller.check_write(repo)
        if request.query_params.get("create_pr", "").lower() in ("1", "true"):
            raise HubRequestError("Pull requests are not supported by Cove: commit to a branch instead.")
        lines = body.splitlines() if isinstance(body, bytes) else files.iter_lines(body)
        header, ops = files.read_commit(store, s, repo, lines)
        title = str(header.get("summary") or "").strip()
        commit_id = store.commit(
            s,
            repo,
            ops,
            title=title,
            message=str(header.get("description") or ""),
            author=caller.name or "anonymous",
            branch=args[0] if args else None,
            parent_commit=header.get("parentCommit"),
        )
        return JSONResponse(
            {
                "success": True,
                "commitOid": commit_id,
                "commitUrl": f"{repo_url(request, repo.type, repo.repo_id)}/commit/{commit_id}",
                "commitMessage": title,
                "hookOutput": "",
                "pullRequestUrl": None,
            }
        )

    return error_response(404, f"No route {method} {request.url.path}: not part of the Hub API Cove serves.")


async def _spool_limited(request: Request, limit: int, out: Any) -> None:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HubRequestError(f"Request body of {length} bytes is over the upload limit of {limit} bytes.")
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HubRequestError(
                f"Request body is over the upload limit of {limit} bytes (COVE_MAX_UPLOAD_BYTES)."
            )
        out.write(chunk)


async def _read_limited(request: Request, limit: int) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise HubRequestError(f"Request body of {length} bytes is over the upload limit of {limit} bytes.")
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise HubRequestError(
                f"Request body is over the upload limit of {limit} bytes (COVE_MAX_UPLOAD_BYTES)."
            )
        chunks.append(chunk)
    return b"".join(chunks)


@router.post("/api/repos/create")
async def create_repo(request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    body = await _json(request)
    name = body.get("name")
    if not isinstance(name, str):
        raise HubRequestError("create needs a JSON body with 'name'.")
    namespace = body.get("organization") or caller.name
    if namespace is None:
        return error_response(
            401, "Creating a repo needs a write token: pass one (Authorization: Bearer ...)."
        )
    repo_type = check_repo_type(body.get("type"))
    if not caller.can_write_namespace(namespace):
        return error_response(
            403,
            f"You may not create repos under {namespace!r}: use a write token of that user or of an org member.",
        )
    if get_account(s, namespace) is None:
        raise HubRequestError(f"No user or organisation named {namespace!r}: create it first (cove org add).")
    private = bool(body.get("private", False))
    if body.get("visibility") is not None:
        private = body["visibility"] == "private"
    repo_id = f"{namespace}/{name}"
    url = repo_url(request, repo_type, repo_id)
    if hub.store.exists(s, repo_type, repo_id):  # the client reads "url" from the 409 too (exist_ok)
        return JSONResponse(
            {"error": f"You already created this {repo_type} repo: {repo_id}", "url": url},
            status_code=409,
            headers={"X-Error-Message": "Repo already exists", "X-Error-Code": "Conflict"},
        )
    repo = hub.store.create_repo(
        s, repo_type, repo_id, private=private, author=caller.name or namespace, sdk=body.get("sdk")
    )
    return JSONResponse(
        {"url": repo_url(request, repo_type, repo_id), "name": repo_id, "id": f"{repo.id:024x}"}
    )


@router.delete("/api/repos/delete")
async def delete_repo(request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    body = await _json(request)
    namespace = body.get("organization") or caller.name
    repo = _visible_repo(hub, s, caller, check_repo_type(body.get("type")), f"{namespace}/{body.get('name')}")
    caller.check_admin(repo)
    hub.store.delete_repo(s, repo)
    return JSONResponse({})


@router.post("/api/repos/move")
async def move_repo(request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    body = await _json(request)
    repo = _visible_repo(hub, s, caller, check_repo_type(body.get("type")), str(body.get("fromRepo")))
    caller.check_admin(repo)
    to = str(body.get("toRepo"))
    namespace = to.split("/")[0]
    if not caller.can_write_namespace(namespace) or get_account(s, namespace) is None:
        return error_response(403, f"You may not move repos into {namespace!r}.")
    hub.store.move_repo(s, repo, to)
    return JSONResponse({"url": repo_url(request, repo.type, repo.repo_id)})


@router.post("/api/validate-yaml")
async def validate_yaml(request: Request) -> Response:
    body = await _json(request)
    content = body.get("content")
    if not isinstance(content, str):
        raise HubRequestError("validate-yaml needs a JSON body with 'content': the README or its YAML.")
    try:
        if split_front_matter(content) is not None:
            card_from_readme(content)
        else:
            parse_yaml(content)
    except HubRequestError as exc:
        return JSONResponse({"errors": [{"message": str(exc)}], "error": str(exc)}, status_code=400)
    return JSONResponse({"errors": [], "warnings": []})


@router.get("/api/whoami-v2")
def whoami(request: Request, s: Db, caller: Caller) -> Response:
    if caller.name is None:
        return error_response(401, "Invalid credentials in Authorization header")
    account = get_account(s, caller.name)
    assert account is not None
    return JSONResponse(
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


# registered last: the specific /api/... routes above take precedence over this catch-all
router.add_api_route("/api/{kind}/{rest:path}", repo_dispatch, methods=["GET", "POST", "PUT", "DELETE"])
