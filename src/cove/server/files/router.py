"""File routes: resolve (HEAD/GET with Range) and the git-LFS batch API with the basic transfer."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from cove.errors import BlobMismatchError, HubRequestError
from cove.server.deps import PLURAL, Caller, Db, HubDep, base_url, raw_segments, unquote_segment
from cove.server.errors import error_response
from cove.server.files import service
from cove.server.files.pipe import pipe_to

router = APIRouter()
LFS_JSON = "application/vnd.git-lfs+json"


@router.put("/cove-lfs/{oid}")
async def lfs_upload(oid: str, request: Request, hub: HubDep, s: Db) -> Response:
    """Basic-transfer upload target; the URL is signed by the batch endpoint, so it carries no token."""
    q = request.query_params
    try:
        size, expires, repo_pk = int(q["size"]), int(q["expires"]), int(q["repo"])
    except (KeyError, ValueError) as exc:
        raise HubRequestError("Malformed LFS upload URL: ask the LFS batch endpoint for a new one.") from exc
    service.check_lfs_signature(hub.secret, repo_pk, oid, size, expires, q.get("sig", ""))
    if size > hub.settings.max_upload_bytes:
        raise HubRequestError(
            f"LFS object of {size} bytes is over the upload limit of {hub.settings.max_upload_bytes}."
        )

    def check(total: int) -> None:
        if total > size:
            raise BlobMismatchError(
                f"LFS object {oid} is larger than the announced {size} bytes; nothing stored."
            )

    def store(body: Any) -> tuple[str, int]:
        return hub.store.blobs.put_stream(body, expected_sha256=oid)

    # streamed into the store as it arrives: a blob appears only complete and verified (disk: temp file +
    # rename; S3: a multipart upload completed last), so a crash mid-upload leaves no partial blob
    _, total = await pipe_to(request.stream(), store, check=check)
    if total != size:  # the hash matched, so only a wrong announced size gets here
        raise BlobMismatchError(f"LFS object {oid} has {total} bytes, not the announced {size}.")
    hub.store.link_lfs(s, repo_pk, oid)
    return Response(status_code=200)


@router.post("/cove-lfs/{oid}/verify")
async def lfs_verify(oid: str, request: Request, hub: HubDep, s: Db) -> Response:
    try:
        body = json.loads(await request.body() or b"{}")
    except ValueError as exc:
        raise HubRequestError(f"Malformed JSON in the LFS verify request: {exc}.") from exc
    size = body.get("size") if isinstance(body, dict) else None
    q = request.query_params
    try:
        repo_pk = int(q["repo"])
        service.check_lfs_signature(
            hub.secret, repo_pk, oid, int(q["size"]), int(q["expires"]), q.get("sig", "")
        )
    except (KeyError, ValueError) as exc:
        raise HubRequestError("Malformed LFS verify URL: ask the LFS batch endpoint for a new one.") from exc
    if not hub.store.has_lfs(s, repo_pk, oid):
        return error_response(404, f"LFS object {oid} was not uploaded.")
    if size is not None and hub.store.blobs.size(oid) != size:
        return error_response(422, f"LFS object {oid} has {hub.store.blobs.size(oid)} bytes, not {size}.")
    return JSONResponse({"ok": True})


@router.get("/cove-lfs/{oid}")
def lfs_download(oid: str, request: Request, hub: HubDep, s: Db) -> Response:
    """Basic-transfer download target for git-lfs clients; signed by the batch endpoint like uploads."""
    q = request.query_params
    try:
        repo_pk = int(q["repo"])
        service.check_lfs_signature(
            hub.secret, repo_pk, oid, int(q["size"]), int(q["expires"]), q.get("sig", "")
        )
    except (KeyError, ValueError) as exc:
        raise HubRequestError(
            "Malformed LFS download URL: ask the LFS batch endpoint for a new one."
        ) from exc
    if not hub.store.has_lfs(s, repo_pk, oid):
        return error_response(404, f"LFS object {oid} not found.")
    size = hub.store.blobs.size(oid)
    s.close()  # as in resolve: no pooled connection held while streaming
    return StreamingResponse(
        hub.store.blobs.iter_range(oid),
        headers={"Content-Length": str(size)},
        media_type="application/octet-stream",
    )


def _parse_repo(segs: list[str]) -> tuple[str, list[str]]:
    """(repo type, remaining segments) for /{datasets,spaces,models}/ns/name/... or /ns/name/..."""
    if segs and segs[0] in PLURAL:
        return PLURAL[segs[0]], segs[1:]
    return "model", segs


@router.post("/{rest:path}")
async def lfs_batch(rest: str, request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    segs = raw_segments(request)
    repo_type, segs = _parse_repo(segs)
    if len(segs) != 6 or not segs[1].endswith(".git") or segs[2:] != ["info", "lfs", "objects", "batch"]:
        return error_response(404, f"No route POST {request.url.path}.")
    repo_id = f"{unquote_segment(segs[0])}/{unquote_segment(segs[1])[:-4]}"
    repo = hub.store.get_repo(s, repo_type, repo_id)
    caller.check_read(repo)
    try:
        body = json.loads(await request.body())
    except ValueError as exc:
        raise HubRequestError(f"Malformed JSON in the LFS batch request: {exc}.") from exc
    if not isinstance(body, dict) or not isinstance(body.get("objects"), list):
        raise HubRequestError(
            "Malformed LFS batch request: expected {'operation', 'objects': [{oid, size}]}."
        )
    operation = body.get("operation")
    if operation == "upload":
        caller.check_write(repo)
    elif operation != "download":
        raise HubRequestError(f"Unknown LFS operation {operation!r}: use upload or download.")
    objects: list[dict[str, Any]] = []
    root = base_url(request)
    for obj in body["objects"]:
        oid, size = str(obj.get("oid", "")), obj.get("size")
        if not re.fullmatch(r"[0-9a-f]{64}", oid) or not isinstance(size, int) or size < 0:
            objects.append(
                {
                    "oid": oid,
                    "size": size if isinstance(size, int) else 0,
                    "error": {"code": 422, "message": "oid must be a sha256 hex digest and size an integer"},
                }
            )
            continue
        if operation == "upload" and size > hub.settings.max_upload_bytes:
            objects.append(
                {
                    "oid": oid,
                    "size": size,
                    "error": {
                        "code": 413,
                        "message": f"over the upload limit of {hub.settings.max_upload_bytes}",
                    },
                }
            )
            continue
        entry: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
        if operation == "download":
            if not hub.store.has_lfs(s, repo.id, oid):
                objects.append(
                    {"oid": oid, "size": size, "error": {"code": 404, "message": "object not found"}}
                )
                continue
            expires, sig = service.sign_lfs(hub.secret, repo.id, oid, size)
            query = f"repo={repo.id}&size={size}&expires={expires}&sig={sig}"
            entry["actions"] = {"download": {"href": f"{root}/cove-lfs/{oid}?{query}", "header": {}}}
        elif not hub.store.has_lfs(s, repo.id, oid):
            # even when the blob exists (another repo has it), the bytes must come: knowing a hash is not
            # proof of having the content
            expires, sig = service.sign_lfs(hub.secret, repo.id, oid, size)
            query = f"repo={repo.id}&size={size}&expires={expires}&sig={sig}"
            entry["actions"] = {
                "upload": {"href": f"{root}/cove-lfs/{oid}?{query}", "header": {}},
                "verify": {"href": f"{root}/cove-lfs/{oid}/verify?{query}", "header": {}},
            }
        objects.append(entry)
    return JSONResponse({"transfer": "basic", "objects": objects, "hash_algo": "sha256"}, media_type=LFS_JSON)


def _count_download(s: Db, repo_pk: int) -> None:
    """Best effort: a busy database must not fail a download."""
    from sqlalchemy import update
    from sqlalchemy.exc import OperationalError

    from cove.store import RepoRow

    s.rollback()  # end the read transaction, so the write below waits for the lock instead of failing
    try:
        s.execute(update(RepoRow).where(RepoRow.id == repo_pk).values(downloads=RepoRow.downloads + 1))
        s.commit()
    except OperationalError:
        s.rollback()


def _parse_range(header: str, size: int) -> tuple[int, int] | None:
    """(start, end exclusive) for 'bytes=a-b', 'bytes=a-' or 'bytes=-n'; None when unsatisfiable."""
    m = re.fullmatch(r"\s*bytes=(\d*)-(\d*)\s*", header)
    if m is None or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):
        n = int(m.group(2))
        return (max(0, size - n), size) if n > 0 and size > 0 else None
    start = int(m.group(1))
    end = int(m.group(2)) + 1 if m.group(2) else size
    end = min(end, size)
    if start >= size or end <= start:
        return None
    return start, end


@router.api_route("/{rest:path}", methods=["GET", "HEAD"])
def resolve(rest: str, request: Request, hub: HubDep, s: Db, caller: Caller) -> Response:
    segs = raw_segments(request)
    repo_type, segs = _parse_repo(segs)
    if len(segs) < 5 or segs[2] != "resolve":
        return error_response(404, f"No route {request.method} {request.url.path}.")
    repo_id = f"{unquote_segment(segs[0])}/{unquote_segment(segs[1])}"
    revision = unquote_segment(segs[3])
    path = unquote_segment("/".join(segs[4:]))
    store = hub.store
    repo = store.get_repo(s, repo_type, repo_id)
    caller.check_read(repo)
    commit_id = store.resolve(s, repo, revision)
    try:
        entry = store.file(s, repo, commit_id, path)
    except FileNotFoundError as exc:
        exc.headers = {"X-Repo-Commit": commit_id}  # type: ignore[attr-defined]
        raise
    headers = {
        "X-Repo-Commit": commit_id,
        "ETag": f'"{entry.sha256 if entry.lfs else entry.oid}"',
        "Accept-Ranges": "bytes",
        # RFC 6266/5987: headers are latin-1, file names need not be
        "Content-Disposition": f"inline; filename*=UTF-8''{quote(path.rsplit('/', 1)[-1], safe='')}",
        "Cache-Control": "private, max-age=0",
    }
    if entry.lfs:
        headers["X-Linked-Etag"] = f'"{entry.sha256}"'
        headers["X-Linked-Size"] = str(entry.size)
    start, end, status = 0, entry.size, 200
    range_header = request.headers.get("range")
    if range_header and entry.size > 0:
        rng = _parse_range(range_header, entry.size)
        if rng is None:
            return error_response(
                416,
                f"Range {range_header!r} is not satisfiable for a {entry.size}-byte file.",
                extra_headers={"Content-Range": f"bytes */{entry.size}"},
            )
        start, end, status = rng[0], rng[1], 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{entry.size}"
    headers["Content-Length"] = str(end - start)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers, media_type="application/octet-stream")
    if status == 200 and path.endswith(("config.json", ".safetensors", ".gguf")):
        _count_download(s, repo.id)
    presign = getattr(store.blobs, "presigned_url", None)
    if hub.settings.s3_presign_downloads and entry.lfs and presign is not None:
        # the object store serves the bytes (Range included); the client follows the redirect as it does
        # to the Hub's CDN
        for key in ("Content-Length", "Content-Range", "Accept-Ranges"):
            headers.pop(key, None)
        headers["Location"] = presign(entry.sha256)
        return Response(status_code=302, headers=headers)
    # give the database connection back before streaming: a large download must not hold one of the pool's
    # connections (50 slow clients would starve every other request)
    s.close()
    return StreamingResponse(
        store.blobs.iter_range(entry.sha256, start, end),
        status_code=status,
        headers=headers,
        media_type="application/octet-stream",
    )
