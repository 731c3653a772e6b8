"""Cove's client for any hub that speaks the Hugging Face Hub protocol (Cove's own server, or another).

Downloads land in the huggingface_hub cache layout (see cove.hub.cache), resume with Range and show a
progress bar; HF_HUB_OFFLINE=1 answers from the cache only. Uploads use preupload + the NDJSON commit
endpoint, with the git-LFS batch API (basic transfer) for files the server wants as LFS.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from cove.errors import (
    AuthenticationError,
    CommitConflictError,
    EntryNotFoundError,
    HubError,
    HubPermissionError,
    HubRequestError,
    HubUnreachableError,
    OfflineModeError,
    RepoExistsError,
    RepoNotFoundError,
    RevisionNotFoundError,
)
from cove.hub import cache

TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_CHUNK = 1 << 20


# --- endpoint and token -----------------------------------------------------------------------------


def get_endpoint() -> str | None:
    """COVE_ENDPOINT, else HF_ENDPOINT, else None (no remote hub configured)."""
    value = os.environ.get("COVE_ENDPOINT") or os.environ.get("HF_ENDPOINT")
    return value.rstrip("/") if value else None


def _token_path() -> Path:
    home = os.environ.get("COVE_HOME") or "~/.cove"
    return Path(home).expanduser() / "token"


def save_token(token: str) -> Path:
    """Store a token for later calls (cove login); readable by the owner only."""
    token = token.strip()
    if not token:
        raise HubRequestError("Empty token: pass the token `cove user add` or `cove token add` printed.")
    path = _token_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return path


def get_token(token: str | bool | None = None) -> str | None:
    """The explicit token, else COVE_TOKEN / HF_TOKEN, else the stored login; ``False``: none at all."""
    if token is False:
        return None
    if isinstance(token, str) and token:
        return token
    for key in ("COVE_TOKEN", "HF_TOKEN"):
        if os.environ.get(key):
            return os.environ[key]
    path = _token_path()
    return path.read_text().strip() or None if path.is_file() else None


def whoami(token: str | bool | None = None, *, endpoint: str | None = None) -> dict[str, Any]:
    """The hub's whoami-v2 answer for the token (or the stored login)."""
    with _client() as client:
        r = client.get(f"{_endpoint(endpoint)}/api/whoami-v2", headers=_headers(token))
    _raise_for_status(r, "whoami")
    return r.json()


def _headers(token: str | bool | None) -> dict[str, str]:
    from cove import __version__

    headers = {"User-Agent": f"cove/{__version__}", "Accept-Encoding": "identity"}
    tok = get_token(token)
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    return headers


def _endpoint(endpoint: str | None) -> str:
    value = endpoint or get_endpoint()
    if not value:
        raise HubRequestError("No hub configured: set COVE_ENDPOINT (or HF_ENDPOINT) to the hub's URL.")
    return value.rstrip("/")


def _raise_for_status(response: Any, what: str) -> None:
    if response.status_code < 400:
        return
    code = response.headers.get("X-Error-Code")
    try:
        message = response.json().get("error") or response.text
    except ValueError:
        message = response.text or response.reason_phrase
    message = f"{what}: {message}"
    if code == "RepoNotFound":
        raise RepoNotFoundError(message)
    if code == "RevisionNotFound":
        raise RevisionNotFoundError(message)
    if code == "EntryNotFound":
        raise EntryNotFoundError(message)
    if response.status_code == 401:
        raise AuthenticationError(f"{message} (check the token; `cove login` stores one)")
    if response.status_code == 403:
        raise HubPermissionError(message)
    if response.status_code == 409:
        raise RepoExistsError(message)
    if response.status_code == 412:
        raise CommitConflictError(message)
    if response.status_code == 404:
        raise RepoNotFoundError(message)
    if response.status_code in (400, 413, 422):
        raise HubRequestError(message)
    raise HubError(f"{message} (HTTP {response.status_code})")


def _client(timeout: float = 60.0):  # type: ignore[no-untyped-def]
    import httpx

    return httpx.Client(timeout=httpx.Timeout(timeout, connect=10.0), follow_redirects=True)


# --- downloads ----------------------------------------------------------------------------------------


def _file_url(endpoint: str, repo_type: str, repo_id: str, revision: str, filename: str) -> str:
    return (
        f"{endpoint}/{TYPE_PREFIX[repo_type]}{repo_id}/resolve/{quote(revision, safe='')}/{quote(filename)}"
    )


def hub_download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    token: str | bool | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """One file of a repo, through the cache; returns its path in snapshots/<commit>/.

    ``local_files_only`` (or offline mode) answers from the cache without touching the network;
    ``force_download`` fetches the file again even when the cache holds it.
    """
    revision = revision or "main"
    folder = cache.repo_folder(repo_id, repo_type, _cache_root(cache_dir))
    if local_files_only or cache.is_offline():
        return _from_cache(folder, repo_id, revision, filename)
    import httpx

    url = _file_url(_endpoint(endpoint), repo_type, repo_id, revision, filename)
    headers = _headers(token)
    try:
        with _client() as client:
            head = client.head(url, headers=headers)
            _raise_for_status(head, f"{repo_id}/{filename}@{revision}")
            commit = head.headers.get("X-Repo-Commit")
            etag = (
                (head.headers.get("X-Linked-Etag") or head.headers.get("ETag") or "")
                .strip('"')
                .removeprefix("W/")
            )
            size = int(head.headers.get("X-Linked-Size") or head.headers.get("Content-Length") or -1)
            if not commit or not etag:
                raise HubError(
                    f"{url} answered without X-Repo-Commit/ETag headers: is it a Hugging Face-style hub?"
                )
            blob = folder / "blobs" / etag
            if force_download:
                blob.with_name(blob.name + ".incomplete").unlink(missing_ok=True)
            if force_download or not blob.is_file():
                _download_resumable(client, url, headers, blob, size, filename)
    except httpx.TransportError as exc:
        try:  # the hub is unreachable: a cached copy is still good
            return _from_cache(folder, repo_id, revision, filename)
        except OfflineModeError:
            raise HubUnreachableError(
                f"Cannot reach the hub for {repo_id}/{filename}: {exc}. Is the server running?"
            ) from exc
    cache.write_ref(folder, revision, commit)
    return cache.link_snapshot(folder, commit, filename, etag)


def _cache_root(cache_dir: str | os.PathLike[str] | None) -> Path | None:
    return Path(cache_dir).expanduser() if cache_dir else None


def _from_cache(folder: Path, repo_id: str, revision: str, filename: str) -> Path:
    commit = cache.cached_commit(folder, revision)
    path = folder / "snapshots" / commit / filename if commit else None
    if path is None or not path.exists():
        raise OfflineModeError(
            f"{repo_id}/{filename}@{revision} is not in the cache ({folder}) and the network may not be used "
            "(local_files_only=True, HF_HUB_OFFLINE=1, or the hub is unreachable): download it once while online."
        )
    return path


def _download_resumable(
    client: Any, url: str, headers: dict[str, str], blob: Path, size: int, name: str
) -> None:
    from tqdm.auto import tqdm

    blob.parent.mkdir(parents=True, exist_ok=True)
    partial = blob.with_name(blob.name + ".incomplete")
    start = partial.stat().st_size if partial.exists() else 0
    if size >= 0 and start > size:
        partial.unlink()
        start = 0
    req_headers = dict(headers)
    if start:
        req_headers["Range"] = f"bytes={start}-"
    disable = os.environ.get("HF_HUB_DISABLE_PROGRESS_BARS", "").upper() in ("1", "TRUE") or None
    with client.stream("GET", url, headers=req_headers) as response:
        if response.status_code == 416 and start == size:
            pass  # the partial file is already complete
        else:
            _raise_for_status(response, url)
            mode = "ab" if start and response.status_code == 206 else "wb"
            done = start if mode == "ab" else 0
            bar = tqdm(
                total=size if size >= 0 else None,
                initial=done,
                unit="B",
                unit_scale=True,
                desc=name,
                disable=disable,
            )
            with partial.open(mode) as f, bar:
                for chunk in response.iter_bytes(_CHUNK):
                    f.write(chunk)
                    bar.update(len(chunk))
    if size >= 0 and partial.stat().st_size != size:
        raise HubError(
            f"Download of {url} stopped at {partial.stat().st_size} of {size} bytes: run it again to resume."
        )
    os.replace(partial, blob)


def repo_info(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    token: str | bool | None = None,
    endpoint: str | None = None,
) -> dict[str, Any]:
    url = f"{_endpoint(endpoint)}/api/{repo_type}s/{repo_id}"
    if revision:
        url += f"/revision/{quote(revision, safe='')}"
    with _client() as client:
        r = client.get(url, headers=_headers(token))
    _raise_for_status(r, f"{repo_type} {repo_id}")
    return r.json()


def snapshot_download(
    repo_id: str,
    *,
    revision: str | None = None,
    repo_type: str = "model",
    token: str | bool | None = None,
    endpoint: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    local_files_only: bool = False,
    force_download: bool = False,
) -> Path:
    """Every file of a repo at a revision; returns snapshots/<commit>/.

    The revision is resolved to a commit once (one repo_info call) and every file is fetched at that
    commit, so the snapshot is one repository state even if the branch moves meanwhile.
    """
    revision = revision or "main"
    folder = cache.repo_folder(repo_id, repo_type, _cache_root(cache_dir))
    if local_files_only or cache.is_offline():
        commit = cache.cached_commit(folder, revision)
        if commit is None or not (folder / "snapshots" / commit).is_dir():
            why = "local_files_only=True" if local_files_only else "offline mode is on (HF_HUB_OFFLINE=1)"
            raise OfflineModeError(
                f"{repo_id}@{revision} is not in the cache ({folder}) and {why}: download it once while "
                "online, or pass cache_dir= where it was downloaded."
            )
        return folder / "snapshots" / commit
    import httpx

    try:
        info = repo_info(repo_id, revision=revision, repo_type=repo_type, token=token, endpoint=endpoint)
    except httpx.TransportError as exc:  # the hub is unreachable: a cached snapshot is still good
        commit = cache.cached_commit(folder, revision)
        if commit is not None and (folder / "snapshots" / commit).is_dir():
            return folder / "snapshots" / commit
        raise HubUnreachableError(
            f"Cannot reach the hub at {_endpoint(endpoint)} for {repo_id}@{revision} ({exc}), and it is not in "
            "the cache: start the server, fix COVE_ENDPOINT/HF_ENDPOINT, or unset them to use the local data dir."
        ) from exc
    commit = info["sha"]
    for sibling in info.get("siblings", []):
        hub_download(
            repo_id,
            sibling["rfilename"],
            revision=commit,
            repo_type=repo_type,
            token=token,
            endpoint=endpoint,
            cache_dir=cache_dir,
            force_download=force_download,
        )
    cache.write_ref(folder, revision, commit)
    snap = folder / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    return snap


# --- uploads ------------------------------------------------------------------------------------------


def create_repo(
    repo_id: str,
    *,
    token: str | None = None,
    repo_type: str = "model",
    private: bool = False,
    exist_ok: bool = True,
    endpoint: str | None = None,
) -> str:
    """Create a repo on the hub; returns its URL ("local:<repo_id>" in the data dir when no hub is set)."""
    if not (endpoint or get_endpoint()):
        from cove.hub.local import local_create_repo

        local_create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=exist_ok)
        return f"local:{repo_id}"
    namespace, _, name = repo_id.rpartition("/")
    payload: dict[str, Any] = {
        "name": name,
        "organization": namespace or None,
        "type": repo_type,
        "private": private,
    }
    with _client() as client:
        r = client.post(f"{_endpoint(endpoint)}/api/repos/create", json=payload, headers=_headers(token))
    if r.status_code == 409 and exist_ok:
        return r.json().get("url", "")
    _raise_for_status(r, f"create {repo_type} {repo_id}")
    return r.json()["url"]


def _walk(folder: Path) -> Iterator[tuple[str, Path]]:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and not rel.startswith(".git/") and not rel.startswith(".cache/huggingface"):
            yield rel, path


def upload_folder(
    repo_id: str,
    folder_path: str | os.PathLike[str],
    *,
    token: str | None = None,
    repo_type: str = "model",
    commit_message: str = "Upload folder with cove",
    create_repo: bool = True,
    private: bool = False,
    revision: str | None = None,
    path_in_repo: str = "",
    endpoint: str | None = None,
) -> str:
    """Upload every file of a folder in one commit; returns the commit URL.

    With no hub configured (no endpoint, COVE_ENDPOINT or HF_ENDPOINT) the commit goes straight into the
    local data dir (cove.hub.local) and the return value is "local:<repo_id>@<commit>".
    """
    folder = Path(folder_path)
    if not folder.is_dir():
        raise HubRequestError(f"{folder} is not a folder: pass the folder to upload (or use upload_file).")
    prefix = path_in_repo.strip("/")
    files = [((f"{prefix}/{rel}" if prefix else rel), path) for rel, path in _walk(folder)]
    if not (endpoint or get_endpoint()):
        from cove.hub.local import local_upload

        commit = local_upload(
            repo_id,
            list(files),
            repo_type=repo_type,
            commit_message=commit_message,
            create_repo=create_repo,
            private=private,
            revision=revision,
        )
        return f"local:{repo_id}@{commit}"
    if create_repo:
        _create(repo_id, token=token, repo_type=repo_type, private=private, endpoint=endpoint)
    return _commit(
        repo_id,
        files,
        token=token,
        repo_type=repo_type,
        message=commit_message,
        revision=revision,
        endpoint=endpoint,
    )


def upload_file(
    repo_id: str | None = None,
    path_or_bytes: str | os.PathLike[str] | bytes | None = None,
    path_in_repo: str | None = None,
    *,
    path_or_fileobj: Any = None,
    token: str | None = None,
    repo_type: str | None = "model",
    commit_message: str | None = None,
    revision: str | None = None,
    endpoint: str | None = None,
) -> str:
    """Commit one file (a path, bytes, or with huggingface_hub's keyword ``path_or_fileobj`` also an open
    binary file) to ``path_in_repo``; returns the commit reference."""
    if path_or_fileobj is not None:
        if path_or_bytes is not None:
            raise TypeError("Pass path_or_bytes or path_or_fileobj, not both.")
        path_or_bytes = path_or_fileobj.read() if hasattr(path_or_fileobj, "read") else path_or_fileobj
    if repo_id is None or path_or_bytes is None or path_in_repo is None:
        raise TypeError(
            "upload_file needs repo_id, path_in_repo and the file (path_or_fileobj or path_or_bytes)."
        )
    if isinstance(path_or_bytes, bytearray | memoryview):
        path_or_bytes = bytes(path_or_bytes)
    if not isinstance(path_or_bytes, bytes | str | os.PathLike):
        raise TypeError(
            f"upload_file takes a path, bytes or a binary file, got {type(path_or_bytes).__name__}."
        )
    repo_type = repo_type or "model"
    if not (endpoint or get_endpoint()):
        from cove.hub.local import local_upload

        src = path_or_bytes if isinstance(path_or_bytes, bytes) else Path(path_or_bytes)
        commit = local_upload(
            repo_id,
            [(path_in_repo, src)],
            repo_type=repo_type,
            revision=revision,
            commit_message=commit_message or f"Upload {path_in_repo}",
        )
        return f"local:{repo_id}@{commit}"
    return _commit(
        repo_id,
        [(path_in_repo, path_or_bytes)],
        token=token,
        repo_type=repo_type,
        message=commit_message or f"Upload {path_in_repo}",
        revision=revision,
        endpoint=endpoint,
    )


_create = create_repo


def _read(src: Path | bytes | str | os.PathLike[str]) -> bytes:
    return src if isinstance(src, bytes) else Path(src).read_bytes()


def _head(src: Path | bytes | str | os.PathLike[str], n: int = 512) -> bytes:
    if isinstance(src, bytes):
        return src[:n]
    with Path(src).open("rb") as f:
        return f.read(n)


def _iter_file(f: Any) -> Iterator[bytes]:
    while chunk := f.read(_CHUNK):
        yield chunk


def _sha256(src: Path | bytes | str | os.PathLike[str]) -> str:
    if isinstance(src, bytes):
        return hashlib.sha256(src).hexdigest()
    digest = hashlib.sha256()
    with Path(src).open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _commit(
    repo_id: str,
    files: list[tuple[str, Any]],
    *,
    token: str | None,
    repo_type: str,
    message: str,
    revision: str | None,
    endpoint: str | None,
) -> str:
    base = _endpoint(endpoint)
    revision = revision or "main"
    rev = quote(revision, safe="")
    api = f"{base}/api/{repo_type}s/{repo_id}"
    headers = _headers(token)
    with _client(timeout=600.0) as client:
        sizes = {p: (len(src) if isinstance(src, bytes) else Path(src).stat().st_size) for p, src in files}
        modes: dict[str, str] = {}
        for i in range(0, len(files), 256):
            chunk = files[i : i + 256]
            payload = {
                "files": [
                    {"path": p, "size": sizes[p], "sample": base64.b64encode(_head(src)).decode()}
                    for p, src in chunk
                ]
            }
            r = client.post(f"{api}/preupload/{rev}", json=payload, headers=headers)
            _raise_for_status(r, f"preupload to {repo_id}")
            modes.update({f["path"]: f["uploadMode"] for f in r.json()["files"]})
        lines = [{"key": "header", "value": {"summary": message, "description": ""}}]
        lfs: list[tuple[str, Any, str]] = []
        for path, src in files:
            if modes.get(path) == "lfs" and sizes[path] > 0:
                sha = _sha256(src)
                lfs.append((path, src, sha))
                lines.append(
                    {
                        "key": "lfsFile",
                        "value": {"path": path, "algo": "sha256", "oid": sha, "size": sizes[path]},
                    }
                )
            else:
                lines.append(
                    {
                        "key": "file",
                        "value": {
                            "path": path,
                            "encoding": "base64",
                            "content": base64.b64encode(_read(src)).decode(),
                        },
                    }
                )
        if lfs:
            _upload_lfs(client, base, repo_type, repo_id, revision, headers, lfs, sizes)
        body = "\n".join(json.dumps(line) for line in lines).encode()
        r = client.post(
            f"{api}/commit/{rev}", content=body, headers={**headers, "Content-Type": "application/x-ndjson"}
        )
        _raise_for_status(r, f"commit to {repo_id}")
        return r.json()["commitUrl"]


def _upload_lfs(
    client: Any,
    base: str,
    repo_type: str,
    repo_id: str,
    revision: str,
    headers: dict[str, str],
    lfs: list[tuple[str, Any, str]],
    sizes: dict[str, int],
) -> None:
    objects = [{"oid": sha, "size": sizes[path]} for path, _, sha in lfs]
    r = client.post(
        f"{base}/{TYPE_PREFIX[repo_type]}{repo_id}.git/info/lfs/objects/batch",
        json={
            "operation": "upload",
            "transfers": ["basic"],
            "objects": objects,
            "hash_algo": "sha256",
            "ref": {"name": revision},
        },
        headers={**headers, "Accept": "application/vnd.git-lfs+json"},
    )
    _raise_for_status(r, f"LFS batch for {repo_id}")
    by_oid = {sha: src for _, src, sha in lfs}
    for obj in r.json()["objects"]:
        if "error" in obj:
            raise HubRequestError(f"LFS object {obj['oid']} refused: {obj['error'].get('message')}")
        actions = obj.get("actions") or {}
        if "upload" not in actions:
            continue  # the server already has these bytes
        up = actions["upload"]
        src = by_oid[obj["oid"]]
        if isinstance(src, bytes):
            put = client.put(up["href"], content=src, headers=up.get("header") or {})
        else:  # streamed from disk, not read into memory
            with Path(src).open("rb") as f:
                put = client.put(
                    up["href"],
                    content=_iter_file(f),
                    headers={**(up.get("header") or {}), "Content-Length": str(obj["size"])},
                )
        _raise_for_status(put, f"LFS upload of {obj['oid']}")
        if "verify" in actions:
            v = actions["verify"]
            ver = client.post(
                v["href"],
                json={"oid": obj["oid"], "size": obj["size"]},
                headers={**headers, **(v.get("header") or {})},
            )
            _raise_for_status(ver, f"LFS verify of {obj['oid']}")


def is_repo_id(name: str) -> bool:
    return re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*", name) is not None
