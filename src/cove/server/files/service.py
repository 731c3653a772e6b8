"""Uploads: the preupload decision (regular vs LFS, never Xet), NDJSON commits, the LFS batch answer and
the signed transfer URLs."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from sqlalchemy.orm import Session

from cove.errors import HubRequestError, InvalidRequestBodyError
from cove.server.auth.service import Principal
from cove.server.files.schemas import (
    LfsAction,
    LfsBatchRequest,
    LfsBatchResponse,
    LfsObjectAnswer,
    LfsObjectError,
)
from cove.server.repos.schemas import PreuploadAnswer, PreuploadFile
from cove.server.settings import Settings
from cove.store import CommitOp, FileEntry, RepoRow, RepoStore, check_path

_HF_HUB_UA = re.compile(r"hf_hub/(\d+)\.(\d+)")
# huggingface_hub from 1.20 on sends every "lfs" file through Xet when hf_xet is installed
_XET_FROM = (1, 20)


def upload_mode(
    settings: Settings, size: int, user_agent: str, override: str | None, *, xet_disabled: bool = False
) -> str:
    """'regular' or 'lfs' for one file. Never Xet: see docs/decisions/hub-preupload-without-xet.md.

    override is the request's X-Cove-Upload-Mode. A per-request "lfs" is honoured only where the client
    can follow it: huggingface_hub >= 1.20 sends "lfs" files through Xet unless HF_HUB_DISABLE_XET is set,
    which it does not tell the server, so for such a client "lfs" counts as "auto" unless the request also
    says X-Cove-Client-Xet: off (xet_disabled)."""
    mode = (override or settings.upload_mode).lower()
    if mode not in ("auto", "lfs", "regular"):
        raise HubRequestError(f"Unknown upload mode {mode!r}: use auto, lfs or regular.")
    if mode == "regular":
        return "regular"
    if size < settings.lfs_threshold_bytes:
        return "regular"
    match = _HF_HUB_UA.search(user_agent or "")
    xet_capable = (
        not xet_disabled and match is not None and (int(match.group(1)), int(match.group(2))) >= _XET_FROM
    )
    if mode == "lfs" and not (override and xet_capable):
        return "lfs"
    if xet_capable and size <= settings.regular_max_bytes:
        return "regular"  # such clients would send "lfs" files through Xet, which Cove does not speak
    return "lfs"


def preupload(
    settings: Settings,
    tree: dict[str, FileEntry],
    entries: list[PreuploadFile],
    *,
    user_agent: str,
    override: str | None,
    xet_disabled: bool = False,
) -> list[PreuploadAnswer]:
    """The preupload answer per file: its upload mode and the current oid (the client skips unchanged files)."""
    out = []
    for item in entries:
        path = check_path(item.path)
        mode = upload_mode(settings, item.size, user_agent, override, xet_disabled=xet_disabled)
        current = tree.get(path)
        oid = None
        if current is not None and current.lfs == (mode == "lfs"):
            # the client compares this with its own: sha256 for LFS files, git sha1 for regular ones
            oid = current.sha256 if current.lfs else current.oid
        out.append(PreuploadAnswer(path=path, uploadMode=mode, shouldIgnore=False, oid=oid))  # type: ignore[arg-type]
    return out


def iter_lines(stream: Any, chunk_size: int = 8 * 1024**2) -> Iterator[bytes]:
    """Lines of a binary stream, read in large chunks (a file's line iterator is slow on 100 MB lines)."""
    pending: list[bytes] = []
    while chunk := stream.read(chunk_size):
        start = 0
        while (end := chunk.find(b"\n", start)) != -1:
            pending.append(chunk[start:end])
            yield b"".join(pending)
            pending = []
            start = end + 1
        if start < len(chunk):
            pending.append(chunk[start:])
    if pending:
        yield b"".join(pending)


def read_commit(
    store: RepoStore, s: Session, repo: RepoRow, lines: Iterable[bytes]
) -> tuple[dict[str, Any], list[CommitOp]]:
    """(header value, operations) from an NDJSON commit body, read line by line: each regular file's
    content goes to the blob store as soon as its line is parsed, so only one file is in memory at a time.
    LFS objects must already have been uploaded to this repo."""
    header: dict[str, Any] | None = None
    ops: list[CommitOp] = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise HubRequestError(f"Malformed NDJSON commit: line {lineno} is not JSON ({exc}).") from exc
        if not isinstance(item, dict) or "key" not in item or not isinstance(item.get("value"), dict):
            raise HubRequestError(
                f"Malformed NDJSON commit: line {lineno} must be {{'key': ..., 'value': {{...}}}}."
            )
        if item["key"] == "header":
            header = item["value"]
        else:
            ops.append(_build_op(store, s, repo, item["key"], item["value"]))
    if header is None:
        raise HubRequestError(
            "Malformed NDJSON commit: the first line must be the 'header' with the summary."
        )
    return header, ops


def commit_ndjson(
    store: RepoStore, s: Session, repo: RepoRow, lines: Iterable[bytes], *, author: str, branch: str | None
) -> tuple[str, str]:
    """Apply an NDJSON commit body; returns (commit id, its title)."""
    header, ops = read_commit(store, s, repo, lines)
    for key in ("summary", "description", "parentCommit"):
        if header.get(key) is not None and not isinstance(header[key], str):
            raise InvalidRequestBodyError(
                f"The commit header's {key!r} must be a string, got {header[key]!r}."
            )
    title = (header.get("summary") or "").strip()
    commit_id = store.commit(
        s,
        repo,
        ops,
        title=title,
        message=header.get("description") or "",
        author=author,
        branch=branch,
        parent_commit=header.get("parentCommit"),
    )
    return commit_id, title


def _build_op(store: RepoStore, s: Session, repo: RepoRow, key: str, value: dict[str, Any]) -> CommitOp:
    path = value.get("path")
    if not isinstance(path, str):
        raise HubRequestError(f"Malformed NDJSON commit: a {key!r} operation has no 'path'.")
    check_path(path.rstrip("/") if key == "deletedFolder" else path)
    if key == "file":
        if value.get("encoding", "base64") != "base64":
            raise HubRequestError(f"Unsupported encoding {value.get('encoding')!r} for {path!r}: use base64.")
        try:
            data = base64.b64decode(value.get("content", ""), validate=True)
        except (binascii.Error, ValueError, TypeError) as exc:
            raise HubRequestError(f"The content of {path!r} is not valid base64: {exc}.") from exc
        return CommitOp("add", path, store.store_regular(data, path))
    if key == "lfsFile":
        oid = str(value.get("oid", ""))
        if value.get("algo", "sha256") != "sha256" or not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubRequestError(f"LFS file {path!r} needs a sha256 'oid' (64 hex characters), got {oid!r}.")
        if not store.has_lfs(s, repo.id, oid):
            raise HubRequestError(
                f"LFS object {oid} for {path!r} was never uploaded to {repo.repo_id!r}: send it through the "
                "LFS batch API first. The repo is unchanged."
            )
        size = value.get("size")
        if size is None:
            size = store.blobs.size(oid)
        if not isinstance(size, int):
            raise HubRequestError(f"LFS file {path!r} needs an integer 'size'.")
        return CommitOp("add", path, store.lfs_entry(path, oid, size))
    if key == "deletedFile":
        return CommitOp("delete", path)
    if key == "deletedFolder":
        return CommitOp("delete_folder", path.rstrip("/"))
    if key == "copyFile":
        src_path = value.get("srcPath", value.get("src_path"))
        src_revision = value.get("srcRevision")
        if not isinstance(src_path, str) or not src_path:
            raise InvalidRequestBodyError(
                f"copyFile to {path!r} needs 'srcPath': the path of the file to copy, got {src_path!r}."
            )
        if src_revision is not None and not isinstance(src_revision, str):
            raise InvalidRequestBodyError(f"copyFile 'srcRevision' must be a string, got {src_revision!r}.")
        check_path(src_path)
        return CommitOp("copy", path, src_path=src_path, src_revision=src_revision)
    raise HubRequestError(
        f"Unknown NDJSON commit key {key!r}: use header, file, lfsFile, deletedFile or deletedFolder."
    )


def sign_lfs(secret: bytes, action: str, repo: RepoRow, oid: str, size: int, *, expires: int) -> str:
    """The signature of an LFS transfer URL. It covers the action (an upload link cannot be used to
    download), the repo and its visibility at signing time, so a link handed to a reader of a private repo
    stops working once the repo's visibility changes."""
    visibility = "private" if repo.private else "public"
    message = f"{action}:{repo.id}:{visibility}:{oid}:{size}:{expires}"
    return hmac.new(secret, message.encode(), hashlib.sha256).hexdigest()


def signed_query(secret: bytes, action: str, repo: RepoRow, oid: str, size: int, lifetime: int) -> str:
    expires = int(time.time()) + lifetime
    sig = sign_lfs(secret, action, repo, oid, size, expires=expires)
    return f"repo={repo.id}&size={size}&expires={expires}&sig={sig}"


def check_signed_link(
    store: RepoStore, s: Session, secret: bytes, action: str, oid: str, query: Mapping[str, str]
) -> tuple[RepoRow, int]:
    """(repo, announced size) of a signed LFS URL, re-checked on use: the repo still exists, its visibility
    is the one signed, the link has not expired."""
    invalid = HubRequestError(
        f"Invalid or expired LFS {action} URL: ask the LFS batch endpoint for a new one."
    )
    try:
        repo_pk, size, expires = int(query["repo"]), int(query["size"]), int(query["expires"])
    except (KeyError, ValueError) as exc:
        raise invalid from exc
    repo = store.repo_by_pk(s, repo_pk)
    if repo is None or expires < time.time():
        raise invalid
    want = sign_lfs(secret, action, repo, oid, size, expires=expires)
    if not hmac.compare_digest(want, query.get("sig", "")):
        raise invalid
    return repo, size


def lfs_batch(
    store: RepoStore,
    s: Session,
    settings: Settings,
    secret: bytes,
    caller: Principal,
    repo: RepoRow,
    body: LfsBatchRequest,
    root: str,
) -> LfsBatchResponse:
    """The batch answer: signed basic-transfer actions per object (or an error for that object)."""
    if body.operation == "upload":
        caller.check_write(repo)
    elif body.operation != "download":
        raise HubRequestError(f"Unknown LFS operation {body.operation!r}: use upload or download.")
    answers: list[LfsObjectAnswer] = []
    for obj in body.objects:
        oid, size = obj.get("oid"), obj.get("size")
        if (
            not isinstance(oid, str)
            or not re.fullmatch(r"[0-9a-f]{64}", oid)
            or not isinstance(size, int)
            or isinstance(size, bool)
            or size < 0
        ):
            answers.append(
                LfsObjectAnswer(
                    oid=str(oid)[:100],
                    size=size if isinstance(size, int) and size >= 0 else 0,
                    error=LfsObjectError(
                        code=422, message="oid must be a sha256 hex digest and size an integer"
                    ),
                )
            )
            continue
        if body.operation == "upload" and size > settings.max_upload_bytes:
            answers.append(
                LfsObjectAnswer(
                    oid=oid,
                    size=size,
                    error=LfsObjectError(
                        code=413, message=f"over the upload limit of {settings.max_upload_bytes}"
                    ),
                )
            )
            continue
        linked = store.has_lfs(s, repo.id, oid)
        if body.operation == "download":
            if not linked:
                answers.append(
                    LfsObjectAnswer(
                        oid=oid, size=size, error=LfsObjectError(code=404, message="object not found")
                    )
                )
                continue
            query = signed_query(secret, "download", repo, oid, size, settings.lfs_download_url_seconds)
            actions = {"download": LfsAction(href=f"{root}/cove-lfs/{oid}?{query}", header={})}
        elif linked:
            actions = None  # already there: nothing to send
        else:
            # even when the blob exists (another repo has it), the bytes must come: knowing a hash is not
            # proof of having the content
            query = signed_query(secret, "upload", repo, oid, size, settings.lfs_upload_url_seconds)
            actions = {
                "upload": LfsAction(href=f"{root}/cove-lfs/{oid}?{query}", header={}),
                "verify": LfsAction(href=f"{root}/cove-lfs/{oid}/verify?{query}", header={}),
            }
        answers.append(LfsObjectAnswer(oid=oid, size=size, authenticated=True, actions=actions))
    return LfsBatchResponse(transfer="basic", objects=answers, hash_algo="sha256")
