"""Space routes in Hugging Face's shapes: runtime, restart (?factory=true), pause, sleeptime, build and run
logs as SSE, secrets (write-only: no answer ever holds a value) and variables. Reading the runtime needs
read access; everything else, logs included (an app may print what it should not), needs write access."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from starlette.types import ASGIApp, Receive, Scope, Send

from cove.errors import HubRequestError
from cove.server.body import json_body
from cove.server.deps import Caller, Db, HubDep, find_repo, get_principal, iso
from cove.server.spaces.runtime import SpaceRuntime, check_env_key
from cove.store import RepoRow, SpaceSettingRow

router = APIRouter()
SPACE = "/api/spaces/{namespace}/{name}"
KEEPALIVE_S = 20.0


class SleepBody(BaseModel):
    seconds: int


class SettingBody(BaseModel):
    key: str
    value: str = ""
    description: str | None = None


class KeyBody(BaseModel):
    key: str = Field(max_length=128)


def get_runtime(request: Request) -> SpaceRuntime:
    return request.app.state.spaces  # type: ignore[no-any-return]


Runtime = Annotated[SpaceRuntime, Depends(get_runtime)]


def readable_space(namespace: str, name: str, hub: HubDep, s: Db, caller: Caller) -> RepoRow:
    return find_repo("space", namespace, name, hub, s, caller)


def writable_space(namespace: str, name: str, hub: HubDep, s: Db, caller: Caller) -> RepoRow:
    repo = find_repo("space", namespace, name, hub, s, caller)
    caller.check_write(repo)
    return repo


def log_space(namespace: str, name: str, request: Request, hub: HubDep) -> RepoRow:
    """writable_space in a session of its own, closed before the log streams (Db would hold a connection
    for as long as a reader follows the log)."""
    with hub.store.session() as s:
        caller = get_principal(request, s)
        repo = find_repo("space", namespace, name, hub, s, caller)
        caller.check_write(repo)
        return repo


ReadableSpace = Annotated[RepoRow, Depends(readable_space)]
WritableSpace = Annotated[RepoRow, Depends(writable_space)]
Sleep = Annotated[SleepBody, Depends(json_body(SleepBody))]
Setting = Annotated[SettingBody, Depends(json_body(SettingBody))]
Key = Annotated[KeyBody, Depends(json_body(KeyBody))]


@router.get(SPACE + "/runtime")
def runtime(repo: ReadableSpace, spaces: Runtime) -> dict[str, Any]:
    return spaces.status(repo.repo_id)


@router.post(SPACE + "/restart")
def restart(repo: WritableSpace, spaces: Runtime, factory: str | None = None) -> dict[str, Any]:
    spaces.restart(repo.repo_id, factory=(factory or "").lower() in ("1", "true", "yes"))
    return spaces.status(repo.repo_id)


@router.post(SPACE + "/pause")
def pause(repo: WritableSpace, spaces: Runtime) -> dict[str, Any]:
    spaces.pause(repo.repo_id)
    return spaces.status(repo.repo_id)


@router.post(SPACE + "/sleeptime")
def sleeptime(repo: WritableSpace, spaces: Runtime, body: Sleep) -> dict[str, Any]:
    if body.seconds < -1 or body.seconds == 0:
        raise HubRequestError(
            f"seconds must be a positive number of seconds, or -1 for the server's default, got {body.seconds}."
        )
    spaces.set_sleep_time(repo.repo_id, body.seconds)
    return spaces.status(repo.repo_id)


@router.get(SPACE + "/logs/{which}")
async def logs(
    which: str, request: Request, repo: Annotated[RepoRow, Depends(log_space)], spaces: Runtime
) -> StreamingResponse:
    if which not in ("build", "run"):
        raise HubRequestError(f"Unknown log {which!r}: use build or run.")
    space = await asyncio.to_thread(spaces.get, repo.repo_id)
    assert space is not None
    book = space.build_log if which == "build" else space.run_log

    async def events() -> AsyncIterator[bytes]:
        generation, offset = book.generation, 0
        quiet = 0.0
        while True:
            generation, offset, lines = book.since(generation, offset)
            for stamp, line in lines:
                yield f"data: {json.dumps({'data': line + chr(10), 'timestamp': stamp})}\n\n".encode()
            if lines:
                quiet = 0.0
            elif which == "build" and not space.building:
                return  # the build is over: so is its log
            if await request.is_disconnected():
                return
            await asyncio.sleep(0.25)
            quiet += 0.25
            if quiet >= KEEPALIVE_S:
                quiet = 0.0
                yield b"data: \n\n"

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


# --- secrets and variables -----------------------------------------------------------------------


def _rows(s: Any, repo: RepoRow, kind: str) -> list[SpaceSettingRow]:
    query = select(SpaceSettingRow).where(SpaceSettingRow.repo_id == repo.id, SpaceSettingRow.kind == kind)
    return list(s.scalars(query.order_by(SpaceSettingRow.key)).all())


def _listing(s: Any, repo: RepoRow, kind: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for row in _rows(s, repo, kind):
        item: dict[str, Any] = {"description": row.description or None, "updatedAt": iso(row.updated_at)}
        if kind == "variable":
            item["value"] = row.value  # variables are plain settings, shown back as Hugging Face does
        out[row.key] = item
    return out


def _put(s: Any, repo: RepoRow, kind: str, body: SettingBody) -> None:
    try:
        key = check_env_key(body.key)
    except ValueError as exc:
        raise HubRequestError(str(exc)) from None
    if len(body.value) > 64 * 1024:
        raise HubRequestError(f"The {kind}'s value is {len(body.value)} characters: at most 65536.")
    row = s.get(SpaceSettingRow, (repo.id, kind, key))
    if row is None:
        row = SpaceSettingRow(repo_id=repo.id, kind=kind, key=key)
        s.add(row)
    row.value = body.value
    if body.description is not None:
        row.description = body.description
    s.commit()


def _delete(s: Any, repo: RepoRow, kind: str, key: str) -> None:
    row = s.get(SpaceSettingRow, (repo.id, kind, key))
    if row is not None:
        s.delete(row)
        s.commit()


def _setting_routes(kind: str) -> None:
    """GET (keys, and a variable's value), POST {key, value, description} and DELETE {key} of
    /api/spaces/{id}/secrets or /variables. A change reaches the app at its next start (restart it)."""

    def listing(repo: WritableSpace, s: Db) -> dict[str, Any]:
        return _listing(s, repo, kind)

    def add(repo: WritableSpace, s: Db, body: Setting) -> dict[str, Any]:
        _put(s, repo, kind, body)
        return _listing(s, repo, kind)

    def delete(repo: WritableSpace, s: Db, body: Key) -> dict[str, Any]:
        _delete(s, repo, kind, body.key)
        return _listing(s, repo, kind)

    path = f"{SPACE}/{kind}s"
    for method, endpoint in (("GET", listing), ("POST", add), ("DELETE", delete)):
        router.add_api_route(path, endpoint, methods=[method], name=f"{endpoint.__name__}_{kind}")


_setting_routes("secret")
_setting_routes("variable")


# --- wiring ---------------------------------------------------------------------------------------


class RecordServerAddress:
    """Notes the address the hub's requests arrive on (the spaces' relay connects back to it)."""

    def __init__(self, app: ASGIApp, runtime: SpaceRuntime) -> None:
        self.app = app
        self.runtime = runtime

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.runtime.hub_address is None and scope["type"] in ("http", "websocket"):
            self.runtime.note_server(scope.get("server"))
        await self.app(scope, receive, send)


def install(app: FastAPI) -> SpaceRuntime:
    """The runtime on app.state.spaces, its routes, the push hook, and start/stop with the app."""
    hub = app.state.hub
    runtime = SpaceRuntime(hub.settings, hub.store)
    app.state.spaces = runtime
    hub.store.branch_listeners.append(runtime.pushed)
    hub.store.gone_listeners.append(runtime.gone)
    app.include_router(router)
    app.add_middleware(RecordServerAddress, runtime=runtime)

    previous = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> Any:
        async with previous(application) as state:
            runtime.started(asyncio.get_running_loop())
            try:
                yield state
            finally:
                await asyncio.to_thread(runtime.shutdown)

    app.router.lifespan_context = lifespan
    return runtime
