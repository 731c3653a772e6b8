"""The space proxy: /spaces/{owner}/{name}/{path} forwarded to the space's running app.

The runtime's `locate` (spaces/target.py) says where the app listens (a unix socket or a loopback port) or
why it is not running; this module only relays. HTTP bodies stream both ways unbuffered (uploads, file
downloads and gradio's SSE queue), WebSockets are relayed frame by frame, and a space that is not running
answers at once with a page that says so (a self-refreshing "starting" page while it builds or wakes).

The app runs with GRADIO_ROOT_PATH=/spaces/{owner}/{name}: gradio builds its public URLs from that path on
the origin it reads from X-Forwarded-Host/-Proto (gradio/route_utils.py get_request_origin), so the proxy
strips the prefix, sets those headers, and the app's links and its client's API calls come back through here.

Whoever may not read the space's repo gets the repo page's 404, before the runtime is asked anything (a
private space is neither woken nor revealed). The hub's own credentials (its session cookies, the
Authorization header, the CSRF header) never reach the app, and the app cannot set cookies outside its
prefix or overwrite the hub's.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.abc
import anyio.from_thread
import httpx
from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, Response
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from cove.server.spaces import target as stages
from cove.server.spaces.target import Locate, SpaceTarget

PREFIX = "/spaces"
# RFC 9110 7.6.1: meaningful for one connection only, never forwarded (plus those the Connection header names)
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
# the hub's credentials, the headers the proxy sets itself, and Expect (the hub already answered the
# client's 100-continue; the body it relays comes whole)
DROPPED_REQUEST_HEADERS = frozenset(
    {
        "authorization",
        "x-csrf-token",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "expect",
    }
)
# what a WebSocket handshake carries that the client library sets again for the upstream connection
WS_HANDSHAKE_HEADERS = frozenset(
    {
        "host",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
    }
)
HUB_COOKIES = ("cove_session", "cove_csrf")  # web/session.py SESSION_COOKIE, CSRF_COOKIE
STARTING_STAGES = (stages.BUILDING, stages.SLEEPING)
RETRY_AFTER_SECONDS = 3
LOCATE_TIMEOUT_SECONDS = 20.0
CONNECT_TIMEOUT_SECONDS = 10.0
MAX_CLIENTS = 64  # one pooled client per unix socket; the least recently used one is closed past this


def forwarded_path(scope: Scope) -> str:
    """The request's path after /spaces/{owner}/{name}, as the client sent it (escapes kept), with its
    query: "/" for the app's root."""
    raw = scope.get("raw_path") or scope["path"].encode()
    path = raw.decode("latin-1").split("?", 1)[0]
    parts = path.split("/", 4)  # "", "spaces", owner, name, rest
    rest = "/" + (parts[4] if len(parts) > 4 else "")
    query = scope.get("query_string", b"").decode("latin-1")
    return rest + (f"?{query}" if query else "")


def space_prefix(repo_id: str) -> str:
    return f"{PREFIX}/{repo_id}"


def _connection_tokens(headers: list[tuple[bytes, bytes]]) -> set[str]:
    tokens: set[str] = set()
    for key, value in headers:
        if key.lower() == b"connection":
            tokens.update(t.strip().lower() for t in value.decode("latin-1").split(",") if t.strip())
    return tokens


def _without_hub_cookies(cookie_header: str) -> str:
    kept = [
        part.strip()
        for part in cookie_header.split(";")
        if part.strip() and part.split("=", 1)[0].strip() not in HUB_COOKIES
    ]
    return "; ".join(kept)


def upstream_headers(conn: HTTPConnection, *, websocket: bool = False) -> list[tuple[str, str]]:
    """The client's headers for the app: hop-by-hop ones and the hub's credentials dropped, X-Forwarded-*
    set so the app builds its URLs on the hub's origin."""
    raw: list[tuple[bytes, bytes]] = conn.scope["headers"]
    dropped = HOP_BY_HOP | DROPPED_REQUEST_HEADERS | _connection_tokens(raw)
    if websocket:
        dropped = dropped | WS_HANDSHAKE_HEADERS
    out: list[tuple[str, str]] = []
    for key_bytes, value_bytes in raw:
        key, value = key_bytes.decode("latin-1").lower(), value_bytes.decode("latin-1")
        if key in dropped:
            continue
        if key == "cookie":
            value = _without_hub_cookies(value)
            if not value:
                continue
        out.append((key, value))
    client = conn.client.host if conn.client else ""
    previous = conn.headers.get("x-forwarded-for")
    # the hub is the edge unless it runs behind a proxy of its own, whose chain is kept (uvicorn's
    # --proxy-headers then decides what conn.url.scheme is)
    out.append(("x-forwarded-for", f"{previous}, {client}" if previous else client))
    out.append(("x-forwarded-host", conn.headers.get("host") or conn.url.netloc))
    scheme = conn.url.scheme
    out.append(("x-forwarded-proto", {"ws": "http", "wss": "https"}.get(scheme, scheme)))
    return out


_COOKIE_SCOPE = re.compile(r"^\s*(path|domain)\s*(=|$)", re.IGNORECASE)


def scoped_set_cookie(value: str, prefix: str) -> str | None:
    """The app's Set-Cookie limited to the space's prefix on the hub's host (None: a hub cookie's name,
    dropped): a space cannot sign a visitor out of the hub, or into another account."""
    name_value, *attributes = value.split(";")
    name = name_value.split("=", 1)[0].strip()
    if not name or name in HUB_COOKIES or name.lower().startswith(("__host-", "__secure-")):
        return None
    kept = [a.strip() for a in attributes if a.strip() and not _COOKIE_SCOPE.match(a)]
    return "; ".join([name_value.strip(), *kept, f"Path={prefix}/"])


def downstream_headers(response: httpx.Response, prefix: str) -> list[tuple[bytes, bytes]]:
    raw = response.headers.raw
    dropped = HOP_BY_HOP | _connection_tokens(raw)
    out: list[tuple[bytes, bytes]] = []
    for key_bytes, value_bytes in raw:
        key = key_bytes.decode("latin-1").lower()
        if key in dropped:
            continue
        if key == "set-cookie":
            scoped = scoped_set_cookie(value_bytes.decode("latin-1"), prefix)
            if scoped is None:
                continue
            value_bytes = scoped.encode("latin-1")
        out.append((key.encode("latin-1"), value_bytes))
    return out


class RelayedResponse(Response):
    """The app's response body relayed as it arrives; the upstream stream is closed when the body ends, the
    client goes away (an abandoned SSE stream must not keep the app's queue busy) or sending fails."""

    def __init__(self, upstream: httpx.Response, headers: list[tuple[bytes, bytes]]) -> None:
        self.upstream = upstream
        self.status_code = upstream.status_code
        self.raw_headers = headers
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def watch_disconnect(group: anyio.abc.TaskGroup) -> None:
            while (await receive())["type"] != "http.disconnect":
                pass
            group.cancel_scope.cancel()

        try:
            async with anyio.create_task_group() as group:
                group.start_soon(watch_disconnect, group)
                # caught here, inside the group: raised through it they would come out as an ExceptionGroup
                try:
                    await self.relay(send)
                except OSError:
                    pass  # the client went away mid-body: nothing left to tell it
                except httpx.HTTPError:
                    pass  # the app died mid-body: the client sees a cut response (its status is sent)
                group.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.upstream.aclose()

    async def relay(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        async for chunk in self.upstream.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def status_page(
    request: HTTPConnection, repo_id: str, target: SpaceTarget, status: int | None = None
) -> Response:
    """What a space that is not running answers: a page for browsers (a starting one refreshes itself),
    503 with Retry-After and the stage in JSON for clients (gradio_client retries on it)."""
    from cove.server.web.render import PAGE_HEADERS, environment

    # RUNNING without an address: the app is up but not listening yet
    starting = target.stage in STARTING_STAGES or target.stage == stages.RUNNING
    code = status or 503
    headers = {"Cache-Control": "no-store", "X-Space-Stage": target.stage}
    if starting:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        html = (
            environment()
            .get_template("spaces/status.html")
            .render(
                repo_id=repo_id,
                stage=target.stage,
                message=target.message,
                starting=starting,
                refresh=RETRY_AFTER_SECONDS,
                repo_url=space_prefix(repo_id),
            )
        )
        return HTMLResponse(html, status_code=code, headers={**PAGE_HEADERS, **headers})
    from cove.server.responses import SafeJSONResponse

    message = target.message or _STAGE_TEXT.get(target.stage, target.stage)
    body = {"error": f"Space {repo_id} is {target.stage}: {message}", "stage": target.stage}
    return SafeJSONResponse(body, status_code=code, headers={**headers, "X-Error-Code": "SpaceNotRunning"})


_STAGE_TEXT = {
    stages.BUILDING: "it is being built; retry in a few seconds.",
    stages.SLEEPING: "it is waking up; retry in a few seconds.",
    stages.RUNNING: "its app is starting; retry in a few seconds.",
    stages.PAUSED: "its owner paused it.",
    stages.BUILD_ERROR: "its build failed.",
    stages.RUNTIME_ERROR: "its app stopped with an error.",
    stages.NO_APP_FILE: "it has no app file.",
    stages.CONFIG_ERROR: "its README's configuration is invalid.",
}


def _visible_space(conn: HTTPConnection, namespace: str, name: str) -> str:
    """The space's repo id when the caller (session cookie or bearer token, as on its repo page) may read
    it; RepoNotFoundError (the repo page's 404) otherwise. Blocking (the database): run in a thread."""
    from cove.server.deps import find_repo
    from cove.server.web.session import web_principal

    hub = conn.app.state.hub
    s = hub.store.session()
    try:
        caller = web_principal(conn, s)  # type: ignore[arg-type]  # reads only what an HTTPConnection has
        return find_repo("space", namespace, name, hub, s, caller).repo_id
    finally:
        s.close()


STAGE_LABELS = {
    stages.BUILDING: "Building",
    stages.BUILD_ERROR: "Build error",
    stages.RUNNING: "Running",
    stages.RUNTIME_ERROR: "Runtime error",
    stages.PAUSED: "Paused",
    stages.SLEEPING: "Sleeping",
    stages.NO_APP_FILE: "No app file",
    stages.CONFIG_ERROR: "Config error",
}
PAGE_LOCATE_SECONDS = 2.0  # the space page shows the stage it finds in this time; its iframe waits longer


@dataclass(frozen=True)
class SpaceStatus:
    """What the space page shows above the app's frame."""

    stage: str
    message: str

    @property
    def label(self) -> str:
        return STAGE_LABELS.get(self.stage, self.stage.replace("_", " ").capitalize())


def page_status(app: Any, repo_id: str) -> SpaceStatus | None:
    """The stage of a space for its page, from a worker thread (the page's sync route); None when this hub
    runs no spaces. A page view is a visit: a sleeping space starts waking while the page loads."""
    proxy: SpaceProxy | None = getattr(app.state, "space_proxy", None)
    if proxy is None:
        return None

    async def ask() -> SpaceTarget:
        try:
            with anyio.fail_after(PAGE_LOCATE_SECONDS):
                return await proxy.locate(repo_id)
        except TimeoutError:
            return SpaceTarget(stages.BUILDING, message="Starting...")

    target = anyio.from_thread.run(ask)
    return SpaceStatus(target.stage, target.message)


class SpaceProxy:
    def __init__(
        self,
        locate: Locate,
        *,
        locate_timeout: float = LOCATE_TIMEOUT_SECONDS,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
        self.locate = locate
        self.locate_timeout = locate_timeout
        # a bounded connect, and no read or write timeout: an SSE stream or a long upload may be quiet
        self.timeout = httpx.Timeout(None, connect=connect_timeout, pool=connect_timeout)
        self._tcp: httpx.AsyncClient | None = None
        self._uds: OrderedDict[str, httpx.AsyncClient] = OrderedDict()

    def client(self, target: SpaceTarget) -> httpx.AsyncClient:
        """One pooled client for loopback ports and one per unix socket."""
        if target.uds is None:
            if self._tcp is None:
                self._tcp = self._new_client(None)
            return self._tcp
        found = self._uds.get(target.uds)
        if found is None:
            found = self._uds[target.uds] = self._new_client(target.uds)
            while len(self._uds) > MAX_CLIENTS:
                _, old = self._uds.popitem(last=False)
                asyncio.get_running_loop().create_task(old.aclose())
        self._uds.move_to_end(target.uds)
        return found

    def _new_client(self, uds: str | None) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=uds, retries=0)
        return httpx.AsyncClient(
            transport=transport, timeout=self.timeout, follow_redirects=False, trust_env=False
        )

    async def aclose(self) -> None:
        clients = [*self._uds.values(), *([self._tcp] if self._tcp else [])]
        self._uds.clear()
        self._tcp = None
        for c in clients:
            await c.aclose()

    async def find(self, conn: HTTPConnection) -> tuple[str, SpaceTarget]:
        """(repo id, where its app is), after the read check; a locate that does not answer in time is a
        space still starting, never a hung request."""
        namespace, name = conn.path_params["namespace"], conn.path_params["name"]
        repo_id = await run_in_threadpool(_visible_space, conn, namespace, name)
        try:
            with anyio.fail_after(self.locate_timeout):
                target = await self.locate(repo_id)
        except TimeoutError:
            target = SpaceTarget(stages.BUILDING, message="The space is taking a while to start.")
        return repo_id, target

    async def http(self, request: Request) -> Response:
        repo_id, target = await self.find(request)
        if not target.reachable:
            return status_page(request, repo_id, target)
        has_body = "content-length" in request.headers or "transfer-encoding" in request.headers
        upstream_request = self.client(target).build_request(
            request.method,
            _upstream_url(target, forwarded_path(request.scope)),
            headers=upstream_headers(request),
            content=_body(request) if has_body else None,
        )
        try:
            upstream = await self.client(target).send(upstream_request, stream=True)
        except (
            httpx.ConnectError,
            httpx.ConnectTimeout,
            httpx.PoolTimeout,
            httpx.RemoteProtocolError,
        ) as exc:
            gone = SpaceTarget(
                stages.RUNTIME_ERROR, message=f"The app is not answering ({type(exc).__name__})."
            )
            return status_page(request, repo_id, gone, status=502)
        return RelayedResponse(upstream, downstream_headers(upstream, space_prefix(repo_id)))

    async def websocket(self, websocket: WebSocket) -> None:
        try:
            import websockets
        except ImportError:  # pragma: no cover - a dependency of the server
            await websocket.close(code=1011, reason="The hub has no websocket client installed.")
            return
        from cove.errors import HubError

        try:
            _, target = await self.find(websocket)
        except HubError:  # not found, not visible, or a bad token: the same 404 the page gives
            await websocket.close(code=1008, reason="Space not found.")
            return
        if not target.reachable:
            await websocket.close(code=1013, reason=f"Space is {target.stage}: retry later.")
            return
        offered = [
            p.strip() for p in websocket.headers.get("sec-websocket-protocol", "").split(",") if p.strip()
        ]
        uri = "ws://" + _netloc(target) + forwarded_path(websocket.scope)
        options: dict[str, Any] = {
            "additional_headers": upstream_headers(websocket, websocket=True),
            "subprotocols": offered or None,
            "open_timeout": self.timeout.connect,
            "max_size": None,  # the app decides how large its messages are
            "ping_interval": None,  # the client's own pings travel through
            "compression": None,
        }
        try:
            if target.uds is not None:
                upstream = await websockets.unix_connect(target.uds, uri, **options)
            else:
                upstream = await websockets.connect(uri, **options)
        except (OSError, TimeoutError, websockets.InvalidHandshake):
            await websocket.close(code=1011, reason="The app is not answering.")
            return
        await websocket.accept(subprotocol=upstream.subprotocol)
        await _relay(websocket, upstream)


async def _relay(client: WebSocket, upstream: Any) -> None:
    """Frames both ways until either side closes; the close code travels to the other side."""
    import websockets

    async def client_to_upstream() -> None:
        try:
            while True:
                message = await client.receive()
                if message["type"] == "websocket.disconnect":
                    await upstream.close(code=message.get("code", 1000))
                    return
                data = message.get("bytes") if message.get("bytes") is not None else message.get("text")
                if data is not None:
                    await upstream.send(data)
        except websockets.ConnectionClosed:
            return

    async def upstream_to_client() -> None:
        try:
            async for data in upstream:
                if isinstance(data, bytes):
                    await client.send_bytes(data)
                else:
                    await client.send_text(data)
            code = upstream.close_code or 1000
        except websockets.ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd else 1011
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):  # the client may have gone already
            await client.close(code=code)

    async with anyio.create_task_group() as group:

        async def run(side: Any) -> None:
            with contextlib.suppress(OSError, WebSocketDisconnect, RuntimeError):
                await side()
            group.cancel_scope.cancel()  # one side ended: so does the other

        group.start_soon(run, client_to_upstream)
        group.start_soon(run, upstream_to_client)
    with anyio.CancelScope(shield=True):
        await upstream.close()


async def _body(request: Request) -> AsyncIterator[bytes]:
    async for chunk in request.stream():
        if chunk:
            yield chunk


def _netloc(target: SpaceTarget) -> str:
    return "localhost" if target.uds is not None else f"{target.host}:{target.port}"


def _upstream_url(target: SpaceTarget, path: str) -> httpx.URL:
    # the path goes as received (raw_path keeps its escapes); the host is only a label over a unix socket
    return httpx.URL(f"http://{_netloc(target)}").copy_with(raw_path=path.encode("latin-1"))


def install_space_proxy(app: FastAPI, locate: Locate) -> SpaceProxy:
    """Serve every space's app at /spaces/{owner}/{name}/...: install after the website's routes, so its
    pages under /spaces/{owner}/{name} (the repo page, /tree, /blob, /resolve, /commits, /settings...) keep
    priority and only the rest reaches the app."""
    proxy = SpaceProxy(locate)
    path = PREFIX + "/{namespace}/{name}/{path:path}"
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
    app.add_route(path, proxy.http, methods=methods, include_in_schema=False)
    app.router.routes.append(WebSocketRoute(path, proxy.websocket))
    app.router.add_event_handler("shutdown", proxy.aclose)
    app.state.space_proxy = proxy
    return proxy
