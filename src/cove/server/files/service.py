"""Uploads: the preupload decision (regular vs LFS, never Xet), NDJSON commits and LFS objects."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Iterable, Iterator
from typing import Any

from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.server.settings import Settings
from cove.store import CommitOp, FileEntry, RepoRow, RepoStore, check_path

_HF_HUB_UA = re.compile(r"hf_hub/(\d+)\.(\d+)")
# huggingface_hub from 1.20 on sends every "lfs" file through Xet when hf_xet is installed
_XET_FROM = (1, 20)


def upload_mode(settings: Settings, size: int, user_agent: str, override: str | None) -> str:
    """'regular' or 'lfs' for one file. Never Xet: see docs/decisions/hub-preupload-without-xet.md."""
    mode = (override or settings.upload_mode).lower()
    if mode not in ("auto", "lfs", "regular"):
        raise HubRequestError(f"Unknown upload mode {mode!r}: use auto, lfs or regular.")
    if mode == "regular":
        return "regular"
    if size < settings.lfs_threshold_bytes:
        return "regular"
    if mode == "lfs":
        return "lfs"
    match = _HF_HUB_UA.search(user_agent or "")
    xet_capable = match is not None and (int(match.group(1)), int(match.group(2))) >= _XET_FROM
    if xet_capable and size <= settings.regular_max_bytes:
        return "regular"  # such clients would send "lfs" files through Xet, which Cove does not speak
    return "lfs"


def preupload(
    settings: Settings, tree: dict[str, FileEntry], entries: Any, *, user_agent: str, override: str | None
) -> list[dict[str, Any]]:
    """The preupload answer per file: its upload mode and the current oid (the client skips unchanged files)."""
    if not isinstance(entries, list):
        raise HubRequestError("preupload needs a JSON body with 'files': [{path, size, sample}].")
    out = []
    for item in entries:
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise HubRequestError("Each preupload file needs a 'path' string.")
        path = check_path(item["path"])
        size = item.get("size", 0)
        if not isinstance(size, int) or size < 0:
            raise HubRequestError(f"Invalid size {size!r} for {path!r}: use a non-negative integer.")
        mode = upload_mode(settings, size, user_agent, override)
        current = tree.get(path)
        oid = None
        if current is not None and current.lfs == (mode == "lfs"):
            # the client compares this with its own: sha256 for LFS files, git sha1 for regular ones
            oid = current.sha256 if current.lfs else current.oid
        out.append({"path": path, "uploadMode": mode, "shouldIgnore": False, "oid": oid})
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
        return CommitOp("copy", path, src_path=value.get("srcPath") or value.get("src_path"))
    raise HubRequestError(
        f"Unknown NDJSON commit key {key!r}: use header, file, lfsFile, deletedFile or deletedFolder."
    )


def sign_lfs(secret: bytes, repo_pk: int, oid: str, size: int, expires: int | None = None) -> tuple[int, str]:
    expires = expires or int(time.time()) + 24 * 3600
    sig = hmac.new(secret, f"{repo_pk}:{oid}:{size}:{expires}".encode(), hashlib.sha256).hexdigest()
    return expires, sig


def check_lfs_signature(secret: bytes, repo_pk: int, oid: str, size: int, expires: int, sig: str) -> None:
    _, want = sign_lfs(secret, repo_pk, oid, size, expires)
    if not hmac.compare_digest(want, sig) or expires < time.time():
        raise HubRequestError("Invalid or expired LFS upload URL: ask the LFS batch endpoint for a new one.")
