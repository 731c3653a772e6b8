"""Shared request plumbing: the hub object, DB sessions, the caller, raw-path parsing and dates."""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import unquote

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cove.errors import HubRequestError
from cove.server.auth.service import Principal, authenticate
from cove.server.settings import Settings
from cove.store import RepoStore

TYPE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
PLURAL = {"models": "model", "datasets": "dataset", "spaces": "space"}


@dataclass
class Hub:
    settings: Settings
    store: RepoStore
    secret: bytes  # signs LFS upload URLs


def load_secret(settings: Settings) -> bytes:
    if settings.secret:
        try:
            return bytes.fromhex(settings.secret)
        except ValueError as exc:
            raise HubRequestError(
                "COVE_SECRET must be hex (e.g. the output of `openssl rand -hex 32`)."
            ) from exc
    path = settings.data_dir.expanduser() / "server-secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


def get_hub(request: Request) -> Hub:
    return request.app.state.hub


def get_db(request: Request) -> Iterator[Session]:
    s = request.app.state.hub.store.session()
    try:
        yield s
    finally:
        s.close()


HubDep = Annotated[Hub, Depends(get_hub)]
Db = Annotated[Session, Depends(get_db)]


def get_principal(request: Request, s: Db) -> Principal:
    return authenticate(s, request.headers.get("authorization"))


Caller = Annotated[Principal, Depends(get_principal)]


def raw_segments(request: Request) -> list[str]:
    """Path segments from the raw (still percent-encoded) path, so '%2F' inside a revision stays one segment."""
    raw = request.scope.get("raw_path") or request.url.path.encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    root = request.scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path.strip("/").split("/")


def unquote_segment(seg: str) -> str:
    value = unquote(seg)
    if "\0" in value:
        raise HubRequestError(f"Invalid path segment {seg!r}: NUL bytes are not allowed.")
    return value


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def repo_url(request: Request, repo_type: str, repo_id: str) -> str:
    return f"{base_url(request)}/{TYPE_PREFIX[repo_type]}{repo_id}"
