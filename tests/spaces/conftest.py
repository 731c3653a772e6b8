"""A live hub that runs spaces (one per test module), spaces pushed with the stock huggingface_hub client,
and their apps reached at the runtime's SpaceTarget (the inbound unix socket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveHub, _online_to_localhost, start_hub  # noqa: F401

# plain apps (no gradio: they start in a fraction of a second) for the lifecycle and sandbox tests; each
# answers GET / with JSON
PLAIN_APP = """
import json, os
from http.server import BaseHTTPRequestHandler, HTTPServer

ROUTES = {}

def answer():
    return {"ok": True}

# EXTRA

class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps(ROUTES.get(self.path, answer)()).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

HTTPServer(("127.0.0.1", int(os.environ["GRADIO_SERVER_PORT"])), Handler).serve_forever()
"""


def readme(sdk: str | None = "gradio", **extra: str) -> str:
    lines = ["---", "title: test"] + ([f"sdk: {sdk}"] if sdk else [])
    lines += [f"{k}: {v}" for k, v in extra.items()]
    return "\n".join([*lines, "---", "# a space", ""])


def plain_app(answer_body: str = "", extra: str = "") -> str:
    """PLAIN_APP with answer()'s body replaced (indented code) and extra code (more ROUTES, say) added."""
    app = PLAIN_APP.replace("# EXTRA", extra)
    if not answer_body:
        return app
    return app.replace('def answer():\n    return {"ok": True}', "def answer():\n" + answer_body)


@pytest.fixture(scope="module")
def space_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    from cove.server.spaces.sandbox import sandbox_problem

    problem = sandbox_problem()
    if problem:
        pytest.skip(f"spaces cannot run here: {problem}")
    live, server, thread = start_hub(
        tmp_path_factory.mktemp("spacehub"),
        spaces="on",  # tests/conftest.py turns spaces off for every other hub
        space_start_timeout_s=180,
        space_memory_mb=3072,
        space_max_processes=64,
        max_running_spaces=8,
    )
    yield live
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=30)


def push(
    hub: LiveHub, repo_id: str, files: dict[str, str], *, create: bool = True, message: str = "push"
) -> None:
    from huggingface_hub import CommitOperationAdd

    api = hub.api()
    if create:
        api.create_repo(repo_id, repo_type="space", space_sdk="gradio", exist_ok=True)
    ops = [CommitOperationAdd(path, text.encode()) for path, text in files.items()]
    api.create_commit(repo_id, repo_type="space", operations=ops, commit_message=message)


def runtime(hub: LiveHub, repo_id: str) -> dict[str, Any]:
    r = httpx.get(f"{hub.url}/api/spaces/{repo_id}/runtime", headers=auth(hub), timeout=30)
    r.raise_for_status()
    return r.json()  # type: ignore[no-any-return]


def auth(hub: LiveHub, user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.tokens[user]}"}


def wait_stage(hub: LiveHub, repo_id: str, *wanted: str, timeout: float = 240) -> dict[str, Any]:
    """Poll the runtime until its stage is one of wanted; fail with the last answer and logs past timeout.
    Generous: CI's 2 cores may be busy."""
    deadline = time.monotonic() + timeout
    info: dict[str, Any] = {}
    while time.monotonic() < deadline:
        info = runtime(hub, repo_id)
        if info["stage"] in wanted:
            return info
        time.sleep(0.3)
    space = hub.app.state.spaces.spaces.get(repo_id)  # type: ignore[attr-defined]
    logs = (space.build_log.tail(40), space.run_log.tail(40)) if space else ("", "")
    raise AssertionError(f"{repo_id} never reached {wanted}: {info}\nbuild:\n{logs[0]}\nrun:\n{logs[1]}")


def locate(hub: LiveHub, repo_id: str) -> Any:
    """What the proxy does on a visit: ask the runtime (which wakes a sleeping space)."""
    runtime_obj = hub.app.state.spaces  # type: ignore[attr-defined]
    return asyncio.run_coroutine_threadsafe(runtime_obj.locate(repo_id), runtime_obj.loop).result(timeout=60)


def app_client(hub: LiveHub, repo_id: str) -> httpx.Client:
    """An HTTP client of the space's app through its SpaceTarget (the sandbox's inbound socket)."""
    target = locate(hub, repo_id)
    assert target.reachable, target
    return httpx.Client(transport=httpx.HTTPTransport(uds=target.uds), base_url="http://space", timeout=60)
