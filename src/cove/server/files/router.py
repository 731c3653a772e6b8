"""File routes: resolve (HEAD/GET with Range), the git-LFS batch API and its signed basic-transfer URLs."""

# no `from __future__ import annotations`: the per-repo-type routes below are closures whose Annotated
# dependencies FastAPI must see as objects, not as strings it cannot resolve in the module's globals
import re
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from cove.errors import BlobMismatchError, EntryNotFoundError, InvalidRequestBodyError, PayloadTooLargeError
from cove.server import rawpath  # noqa: F401  # registers the {x:seg} / {x:rpath} convertors
from cove.server.auth.service import Principal
from cove.server.body import declared_length, iter_body, json_body
from cove.server.deps import Caller, Db, Hub, HubDep, base_url, check_segment, find_repo
from cove.server.errors import error_response
from cove.server.files import service
from cove.server.files.pipe import pipe_to
from cove.server.files.schemas import LfsBatchRequest, LfsVerifyRequest, LfsVerifyResponse
from cove.server.responses import SafeJSONResponse
from cove.store import RepoRow

router = APIRouter()
LFS_JSON = "application/vnd.git-lfs+json"


def _signed(action: str) -> Any:
    """A dependency: the (repo, announced size) of a signed transfer URL, checked before the body is read."""

    def check(oid: str, request: Request, hub: HubDep, s: Db) -> tuple[RepoRow, int]:
        return service.check_signed_link(hub.store, s, hub.secret, action, oid, request.query_params)

    return Depends(check)


SignedUpload = Annotated[tuple[RepoRow, int], _signed("upload")]
SignedDownload = Annotated[tuple[RepoRow, int], _signed("download")]
VerifyBody = Annotated[LfsVerifyRequest, Depends(json_body(LfsVerifyRequest, what="the LFS verify request"))]


@router.put("/cove-lfs/{oid}")
async def lfs_upload(oid: str, request: Request, hub: HubDep, s: Db, link: SignedUpload) -> Response:
    """Basic-transfer upload target; the URL is signed by the batch endpoint, so it carries no token."""
    repo, size = link
    settings = hub.settings
    if size > settings.max_upload_bytes:
        raise PayloadTooLargeError(
            f"LFS object of {size} bytes is over the upload limit of {settings.max_upload_bytes} "
            "(COVE_MAX_UPLOAD_BYTES)."
        )
    declared = declared_length(request)
    if declared is not None and declared != size:
        raise BlobMismatchError(f"LFS object {oid} is announced as {size} bytes, but {declared} are coming.")

    def check(total: int) -> None:
        if total > size:
            raise BlobMismatchError(
                f"LFS object {oid} is larger than the announced {size} bytes; nothing stored."
            )

    def store(body: Any) -> tuple[str, int]:
        return hub.store.blobs.put_stream(body, expected_sha256=oid)

    # streamed into the store as it arrives: a blob appears only complete and verified (disk: temp file +
    # rename; S3: a multipart upload completed last), so a crash mid-upload leaves no partial blob
    body = iter_body(request, settings.max_upload_bytes, settings, setting="COVE_MAX_UPLOAD_BYTES")
    _, total = await pipe_to(body, store, check=check)
    if total != size:  # the hash matched, so only a wrong announced size gets here
        raise BlobMismatchError(f"LFS object {oid} has {total} bytes, not the announced {size}.")
    await run_in_threadpool(hub.store.link_lfs, s, repo.id, oid)
    return Response(status_code=200)


@router.post("/cove-lfs/{oid}/verify", response_model=LfsVerifyResponse)
def lfs_verify(oid: str, hub: HubDep, s: Db, link: SignedUpload, body: VerifyBody) -> Any:
    repo, _ = link
    if not hub.store.has_lfs(s, repo.id, oid):
        raise EntryNotFoundError(f"LFS object {oid} was not uploaded.")
    real = hub.store.blobs.size(oid)
    if body.size is not None and real != body.size:
        raise InvalidRequestBodyError(f"LFS object {oid} has {real} bytes, not {body.size}.")
    return LfsVerifyResponse(ok=True)


@router.get("/cove-lfs/{oid}")
def lfs_download(oid: str, hub: HubDep, s: Db, link: SignedDownload) -> Response:
    """Basic-transfer download target for git-lfs clients; signed by the batch endpoint like uploads."""
    repo, _ = link
    if not hub.store.has_lfs(s, repo.id, oid):  # still linked: a link outlives no deletion
        raise EntryNotFoundError(f"LFS object {oid} not found.")
    size = hub.store.blobs.size(oid)
    s.close()  # as in resolve: no pooled connection held while streaming
    return StreamingResponse(
        hub.store.blobs.iter_range(oid),
        headers={"Content-Length": str(size)},
        media_type="application/octet-stream",
    )


BatchBody = Annotated[
    LfsBatchRequest, Depends(json_body(LfsBatchRequest, media_type=LFS_JSON, what="the LFS batch request"))
]


def _lfs_batch_route(repo_type: str) -> Any:
    def batch_repo(namespace: str, name: str, hub: HubDep, s: Db, caller: Caller) -> RepoRow:
        return find_repo(repo_type, namespace, name, hub, s, caller)

    def lfs_batch(
        request: Request,
        hub: HubDep,
        s: Db,
        caller: Caller,
        repo: Annotated[RepoRow, Depends(batch_repo)],  # before the body: unknown repos read nothing
        body: BatchBody,
    ) -> Response:
        answer = service.lfs_batch(
            hub.store, s, hub.settings, hub.secret, caller, repo, body, base_url(request)
        )
        return SafeJSONResponse(answer.model_dump(exclude_none=True), media_type=LFS_JSON)

    lfs_batch.__name__ = f"lfs_batch_{repo_type}"
    return lfs_batch


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


def resolve(
    repo_type: str,
    namespace: str,
    name: str,
    revision: str,
    path: str,
    request: Request,
    hub: Hub,
    s: Session,
    caller: Principal,
) -> Response:
    store = hub.store
    repo = find_repo(repo_type, namespace, name, hub, s, caller)
    check_segment(revision, "revision")
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
        store.count_download(s, repo.id)
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


def _resolve_route(repo_type: str) -> Any:
    def resolve_file(
        namespace: str,
        name: str,
        revision: str,
        path: str,
        request: Request,
        hub: HubDep,
        s: Db,
        caller: Caller,
    ) -> Response:
        return resolve(repo_type, namespace, name, revision, path, request, hub, s, caller)

    resolve_file.__name__ = f"resolve_{repo_type}"
    return resolve_file


# typed prefixes first: /datasets/ns/name/... is a dataset, not the model "datasets/ns"
for _prefix, _type in (("/datasets", "dataset"), ("/spaces", "space"), ("/models", "model"), ("", "model")):
    router.add_api_route(
        _prefix + "/{namespace:seg}/{name:seg}.git/info/lfs/objects/batch",
        _lfs_batch_route(_type),
        methods=["POST"],
        openapi_extra={"x-lfs-batch": True},
    )
    router.add_api_route(
        _prefix + "/{namespace:seg}/{name:seg}/resolve/{revision:seg}/{path:rpath}",
        _resolve_route(_type),
        methods=["GET", "HEAD"],
        openapi_extra={"x-file-bytes": True},
    )
