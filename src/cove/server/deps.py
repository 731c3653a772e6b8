"""Shared request plumbing: the hub object, DB sessions, the caller, the route's repo and dates."""

from __future__ import annotations

import datetime as dt
import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cove.errors import AuthenticationError, HubPermissionError, HubRequestError
from cove.server.auth.service import Principal, authenticate
from cove.server.settings import Settings
from cove.store import RepoRow, RepoStore

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
        # created 0600, never readable by others even for a moment
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another server on this data dir made it first
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    path.chmod(0o600)
    return bytes.fromhex(path.read_text().strip())


async def get_hub(request: Request) -> Hub:  # async: no threadpool hop for a lookup
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


def get_writer(caller: Caller) -> Principal:
    """A caller with a write token: routes that change repos check it before reading their body."""
    if caller.name is None:
        raise AuthenticationError("This needs a write token: pass one (Authorization: Bearer ...).")
    if caller.token_role != "write":
        raise HubPermissionError(
            f"User {caller.name!r} called with a {caller.token_role} token: this needs a write token."
        )
    return caller


Writer = Annotated[Principal, Depends(get_writer)]


def check_segment(value: str, what: str = "path segment") -> str:
    if "\0" in value:
        raise HubRequestError(f"Invalid {what} {value!r}: NUL bytes are not allowed.")
    return value


def visible_repo(kind: str, namespace: str, name: str, hub: HubDep, s: Db, caller: Caller) -> RepoRow:
    """The repo of an /api/{kind}/{namespace}/{name}/... route, when the caller may see it (else 404)."""
    return find_repo(PLURAL[kind], namespace, name, hub, s, caller)


def find_repo(repo_type: str, namespace: str, name: str, hub: Hub, s: Session, caller: Principal) -> RepoRow:
    repo_id = f"{check_segment(namespace, 'namespace')}/{check_segment(name, 'repo name')}"
    repo = hub.store.get_repo(s, repo_type, repo_id)
    caller.check_read(repo)
    return repo


VisibleRepo = Annotated[RepoRow, Depends(visible_repo)]


def writable_repo(repo: VisibleRepo, caller: Caller) -> RepoRow:
    """The route's repo, when the caller may write to it: checked before any of the body is read."""
    caller.check_write(repo)
    return repo


WritableRepo = Annotated[RepoRow, Depends(writable_repo)]


def flag(value: str | None) -> bool:
    """A query flag as the Hub reads it: 1/true (any case) is on."""
    return (value or "").lower() in ("1", "true")


def iso(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


def repo_url(request: Request, repo_type: str, repo_id: str) -> str:
    return f"{base_url(request)}/{TYPE_PREFIX[repo_type]}{repo_id}"
