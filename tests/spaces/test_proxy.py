"""The space proxy against real processes: gradio Blocks apps under uvicorn (a unix socket and a loopback
port, echo_app.py) behind a live Cove hub, called by the real gradio_client, httpx and a websocket client."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from cove.server.spaces.target import (
    BUILD_ERROR,
    BUILDING,
    PAUSED,
    RUNNING,
    RUNTIME_ERROR,
    SLEEPING,
    SpaceTarget,
)
from tests.server.conftest import LiveHub, start_hub
from tests.spaces.apps import EchoApps, Locator, echo_apps, locator_for

pytestmark = [pytest.mark.server, pytest.mark.slow]

HTML = {"accept": "text/html,application/xhtml+xml"}
UDS_SPACE, TCP_SPACE, SECRET_SPACE = "alice/echo", "alice/echo-tcp", "alice/secret"
SPACE_README = "---\ntitle: Echo\nsdk: gradio\napp_file: app.py\n---\n# Echo\n"


@pytest.fixture(scope="module")
def apps() -> Iterator[EchoApps]:
    yield from echo_apps(UDS_SPACE, TCP_SPACE)


@pytest.fixture(scope="module")
def locator(apps: EchoApps) -> Locator:
    return locator_for(apps, uds=(UDS_SPACE, SECRET_SPACE), port=(TCP_SPACE,))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory, locator: Locator) -> Iterator[LiveHub]:
    from tests.web.browser.conftest import commit_files

    # the runtime runs nothing (COVE_SPACES=off) and the app's proxy asks the stand-in instead
    hub, server, thread = start_hub(tmp_path_factory.mktemp("space-hub"), spaces="off")
    hub.app.state.space_proxy.locate = locator  # type: ignore[attr-defined]
    for repo_id in (UDS_SPACE, TCP_SPACE, SECRET_SPACE, "alice/asleep", "alice/broken", "alice/paused"):
        files = {"README.md": SPACE_README, "app.py": "print('hi')\n"}
        commit_files(hub, repo_id, files, repo_type="space", private=repo_id == SECRET_SPACE)
    yield hub
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


def test_site_pages_keep_priority_over_the_app(live: LiveHub) -> None:
    page = httpx.get(f"{live.url}/spaces/{UDS_SPACE}", headers=HTML)
    assert page.status_code == 200 and "Cove hub" in page.text  # the hub's repo page, not the app
    tree = httpx.get(f"{live.url}/spaces/{UDS_SPACE}/tree/main", headers=HTML)
    assert tree.status_code == 200 and "app.py" in tree.text and "Cove hub" in tree.text
    raw = httpx.get(f"{live.url}/spaces/{UDS_SPACE}/resolve/main/app.py")
    assert raw.text == "print('hi')\n"


@pytest.mark.parametrize("space", [UDS_SPACE, TCP_SPACE])
def test_the_app_page_config_and_assets_load_with_links_under_the_prefix(live: LiveHub, space: str) -> None:
    root = f"{live.url}/spaces/{space}"
    index = httpx.get(f"{root}/", headers=HTML)
    assert index.status_code == 200 and "gradio" in index.text.lower()
    config = httpx.get(f"{root}/config").json()
    assert config["root"] == root  # from GRADIO_ROOT_PATH and X-Forwarded-Host: links come back here
    assets = re.findall(r'(?:src|href)="([^"]+\.(?:js|css))"', index.text)
    assert assets, index.text[:2000]
    for asset in assets[:3]:
        url = (
            asset
            if asset.startswith("http")
            else f"{live.url}{asset}"
            if asset.startswith("/")
            else f"{root}/{asset}"
        )
        assert url.startswith(root + "/"), f"an asset outside the space's prefix: {asset}"
        got = httpx.get(url)
        assert got.status_code == 200 and len(got.content) > 100, asset


@pytest.mark.parametrize("space", [UDS_SPACE, TCP_SPACE])
def test_gradio_client_calls_the_echo_and_streams_through_the_proxy(live: LiveHub, space: str) -> None:
    from gradio_client import Client

    client = Client(f"{live.url}/spaces/{space}/", verbose=False)
    assert client.predict("hello through the proxy", api_name="/echo") == "hello through the proxy"
    job = client.submit(4, api_name="/count")
    assert job.result(timeout=60) == "step 4"
    assert job.outputs() == ["step 1", "step 2", "step 3", "step 4"]  # every SSE update arrived


def test_an_upload_streams_to_the_app(live: LiveHub, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gradio_client import Client, handle_file

    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * (24 * 1024))  # 6 MiB
    client = Client(f"{live.url}/spaces/{UDS_SPACE}/", verbose=False)
    assert client.predict(handle_file(str(big)), api_name="/size") == big.stat().st_size


def test_headers_forwarded_credentials_and_hop_by_hop_dropped(live: LiveHub) -> None:
    sent = {
        "authorization": f"Bearer {live.tokens['alice']}",
        "cookie": "cove_session=secret-session; cove_csrf=c; app_pref=1",
        "x-csrf-token": "t",
        "connection": "keep-alive, x-private",
        "x-private": "one hop only",
        "x-forwarded-host": "spoofed.example",
        "x-custom": "kept",
        "expect": "100-continue",
    }
    got = httpx.post(f"{live.url}/spaces/{UDS_SPACE}/headers?a=1&b=%2F", headers=sent, content=b"x" * 1000)
    assert got.status_code == 200
    seen = got.json()
    assert seen["path"] == "/headers" and seen["query"] == "a=1&b=%2F" and seen["body"] == 1000
    headers = seen["headers"]
    assert "authorization" not in headers and "x-csrf-token" not in headers and "x-private" not in headers
    assert "expect" not in headers
    assert headers["cookie"] == "app_pref=1"
    assert headers["x-custom"] == "kept"
    assert headers["x-forwarded-host"] == live.url.removeprefix("http://")
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_the_app_cannot_set_cookies_outside_its_prefix(live: LiveHub) -> None:
    got = httpx.get(f"{live.url}/spaces/{UDS_SPACE}/cookies")
    cookies = got.headers.get_list("set-cookie")
    assert cookies == [f"theme=dark; HttpOnly; Path=/spaces/{UDS_SPACE}/"]


def test_sse_flows_unbuffered_and_a_client_disconnect_closes_upstream(live: LiveHub) -> None:
    root = f"{live.url}/spaces/{UDS_SPACE}"
    with httpx.stream("GET", f"{root}/sse", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.iter_lines()
        first = [next(lines) for _ in range(3)]  # two events arrive while the stream is still open
        assert first == ["data: 0", "", "data: 1"]
        assert httpx.get(f"{root}/sse-open").json()["n"] == 1
    deadline = time.monotonic() + 30
    while httpx.get(f"{root}/sse-open").json()["n"] != 0:
        assert time.monotonic() < deadline, "the app's stream was not closed after the client left"
        time.sleep(0.1)


def test_an_app_that_dies_mid_body_cuts_that_response_only(live: LiveHub) -> None:
    root = f"{live.url}/spaces/{UDS_SPACE}"
    received = b""
    with pytest.raises(httpx.HTTPError), httpx.stream("GET", f"{root}/cut", timeout=30) as stream:
        assert stream.status_code == 200
        for chunk in stream.iter_raw():
            received += chunk
    assert received == b"first part;"  # what came before the cut arrived
    assert httpx.get(f"{root}/headers").status_code == 200  # the hub and the app still serve


def test_a_websocket_relays_both_ways(live: LiveHub) -> None:
    ws_client = pytest.importorskip("websockets.sync.client")
    url = live.url.replace("http://", "ws://") + f"/spaces/{UDS_SPACE}/ws-echo"
    with ws_client.connect(url, open_timeout=30) as ws:
        ws.send("ping")
        assert ws.recv(timeout=30) == "echo:ping"
        ws.send(b"\x01\x02\x03")
        assert ws.recv(timeout=30) == b"\x03\x02\x01"
        ws.send("bye")  # the app closes with its own code: the client sees it
        with pytest.raises(Exception) as closed:
            ws.recv(timeout=30)
        assert getattr(closed.value, "rcvd", None) is not None and closed.value.rcvd.code == 4000
    secret = live.url.replace("http://", "ws://") + f"/spaces/{SECRET_SPACE}/ws-echo"
    with pytest.raises(Exception) as refused:  # refused at the handshake: a private space's 404 rule
        ws_client.connect(secret, open_timeout=30)
    assert getattr(getattr(refused.value, "response", None), "status_code", None) == 403
    alice = {"Authorization": f"Bearer {live.tokens['alice']}"}
    with ws_client.connect(secret, open_timeout=30, additional_headers=alice) as ws:
        ws.send("owner")
        assert ws.recv(timeout=30) == "echo:owner"


def test_a_private_space_is_404_to_whoever_may_not_see_its_repo(live: LiveHub, locator: Locator) -> None:
    root = f"{live.url}/spaces/{SECRET_SPACE}"
    before = len(locator.asked)
    assert httpx.get(f"{root}/", headers=HTML).status_code == 404
    assert httpx.get(f"{root}/config").status_code == 404
    bob = {"authorization": f"Bearer {live.tokens['bob']}"}
    assert httpx.get(f"{root}/config", headers=bob).status_code == 404
    assert httpx.get(f"{live.url}/spaces/alice/nothing-here/config").status_code == 404
    assert locator.asked[before:] == []  # a space the caller may not see is not even woken
    alice = {"authorization": f"Bearer {live.tokens['alice']}"}
    assert httpx.get(f"{root}/config", headers=alice).status_code == 200


@pytest.mark.parametrize(
    ("stage", "message", "status"),
    [
        (BUILDING, "", 503),
        (SLEEPING, "", 503),
        (BUILD_ERROR, "pip failed: no such package 'nope'", 503),
        (RUNTIME_ERROR, "Traceback: ZeroDivisionError", 503),
        (PAUSED, "", 503),
        (RUNNING, "", 503),  # running, but not listening yet: the runtime gives no address
    ],
)
def test_a_space_that_is_not_running_answers_at_once_with_its_stage(
    live: LiveHub, locator: Locator, stage: str, message: str, status: int
) -> None:
    locator.targets["alice/asleep"] = SpaceTarget(stage, message=message)
    root = f"{live.url}/spaces/alice/asleep"
    page = httpx.get(f"{root}/", headers=HTML, timeout=10)
    assert page.status_code == status and page.headers["x-space-stage"] == stage
    assert page.headers["content-type"].startswith("text/html")
    starting = stage in (BUILDING, SLEEPING, RUNNING)
    assert ('http-equiv="refresh"' in page.text) is starting
    assert ("retry-after" in page.headers) is starting
    if message:
        assert message.replace("'", "&#39;") in page.text
    if stage == PAUSED:
        assert "is paused" in page.text
    api = httpx.post(f"{root}/gradio_api/queue/join", json={}, timeout=10)
    assert api.status_code == status and api.json()["stage"] == stage
    assert api.headers["x-error-code"] == "SpaceNotRunning"


def test_a_running_space_whose_app_is_gone_is_a_502_not_a_hang(
    live: LiveHub, locator: Locator, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    locator.targets["alice/broken"] = SpaceTarget(RUNNING, uds=str(tmp_path / "no.sock"))
    got = httpx.get(f"{live.url}/spaces/alice/broken/", headers=HTML, timeout=30)
    assert got.status_code == 502 and "not answering" in got.text


def test_a_locate_that_hangs_shows_the_starting_page(live: LiveHub) -> None:
    import asyncio

    proxy = live.app.state.space_proxy  # type: ignore[attr-defined]
    original, timeout = proxy.locate, proxy.locate_timeout

    async def slow(repo_id: str) -> SpaceTarget:
        await asyncio.sleep(60)
        raise AssertionError("not reached")

    proxy.locate, proxy.locate_timeout = slow, 0.5
    try:
        got = httpx.get(f"{live.url}/spaces/alice/paused/", headers=HTML, timeout=30)
    finally:
        proxy.locate, proxy.locate_timeout = original, timeout
    assert got.status_code == 503 and got.headers["x-space-stage"] == BUILDING


def test_json_detail_of_a_status_for_clients(live: LiveHub, locator: Locator) -> None:
    locator.targets["alice/paused"] = SpaceTarget(PAUSED)
    got = httpx.get(f"{live.url}/spaces/alice/paused/config")
    assert got.status_code == 503 and "retry-after" not in got.headers
    assert json.loads(got.text)["error"].startswith("Space alice/paused is PAUSED")


def test_the_space_page_embeds_the_app_and_shows_its_stage(live: LiveHub, locator: Locator) -> None:
    page = httpx.get(f"{live.url}/spaces/{UDS_SPACE}", headers=HTML)
    assert f'<iframe class="space-frame" src="/spaces/{UDS_SPACE}/"' in page.text
    assert re.search(r'class="space-stage stage-running"[^>]*>Running<', page.text)
    locator.targets["alice/asleep"] = SpaceTarget(SLEEPING, message="Waking up")
    page = httpx.get(f"{live.url}/spaces/alice/asleep", headers=HTML)
    assert re.search(r'class="space-stage stage-sleeping"[^>]*>Sleeping<', page.text)
    assert "Waking up" in page.text
    assert httpx.get(f"{live.url}/spaces/{SECRET_SPACE}", headers=HTML).status_code == 404
