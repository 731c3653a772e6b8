"""The hub server under attack (issue 12): bounded bodies read only after the guards, an event loop that
nothing blocks, signed LFS links kept out of logs and bound to the repo's visibility, typed bodies that
answer 4xx instead of 500, and a data dir only its owner can read."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import stat
import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.server.conftest import LiveHub, start_hub

pytestmark = pytest.mark.server


def _auth(hub: LiveHub, user: str = "alice") -> dict[str, str]:
    return {"Authorization": f"Bearer {hub.tokens[user]}"}


def _raw_request(hub: LiveHub, head: str, body_chunks=(), timeout: float = 30) -> tuple[int, dict, bytes]:  # type: ignore[no-untyped-def,type-arg]
    """Send a request head (and then body chunks, until the server answers) over a raw socket; returns
    (status, headers, body) of the answer. The server may answer before the body is complete."""
    host, port = urlsplit(hub.url).hostname, urlsplit(hub.url).port
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.encode("latin-1"))
        sock.setblocking(False)
        data = b""
        deadline = time.monotonic() + timeout
        chunks = iter(body_chunks)
        pending = b""
        while time.monotonic() < deadline and b"\r\n\r\n" not in data:
            try:
                got = sock.recv(65536)
                if not got:
                    break
                data += got
                continue
            except BlockingIOError:
                pass
            if not pending:
                pending = next(chunks, b"")
                if not pending:
                    time.sleep(0.01)
                    continue
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                time.sleep(0.005)
            except (BrokenPipeError, ConnectionResetError):
                pending = b""
                time.sleep(0.005)
        sock.setblocking(True)
        sock.settimeout(5)
        head_bytes, _, rest = data.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        assert lines and lines[0].startswith("HTTP/1.1"), data[:200]
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        want = int(headers.get("content-length", "0"))
        while len(rest) < want:
            try:
                got = sock.recv(65536)
            except OSError:
                break
            if not got:
                break
            rest += got
        return int(lines[0].split()[1]), headers, rest


def _head(method: str, path: str, headers: dict[str, str]) -> str:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1"] + [f"{k}: {v}" for k, v in headers.items()]
    return "\r\n".join(lines) + "\r\n\r\n"


# --- 1. bounded bodies, checked before reading --------------------------------------------------------


def test_huge_declared_bodies_are_refused_before_a_byte_is_read(hub):
    hub.api().create_repo("alice/bounded")
    gig = {"Content-Length": str(10**9), "Content-Type": "application/json"}
    upload_cap = hub.app.state.hub.settings.max_upload_bytes  # type: ignore[attr-defined]
    over_upload = {**gig, "Content-Length": str(upload_cap + 1)}
    sha = "ab" * 32
    cases = [
        # (method, path, headers, statuses): no body byte is ever sent, so an answer proves none was read
        ("POST", "/api/validate-yaml", gig, {413}),
        ("POST", "/api/repos/create", {**gig, **_auth(hub)}, {413}),
        ("POST", "/api/repos/create", gig, {401}),  # anonymous: no write token, nothing read
        ("POST", f"/cove-lfs/{sha}/verify?repo=1&size=1&expires=99999999999&sig=x", gig, {400}),
        ("PUT", f"/cove-lfs/{sha}?repo=1&size=1&expires=99999999999&sig=x", gig, {400}),
        ("POST", "/alice/bounded.git/info/lfs/objects/batch", gig, {413}),
        ("POST", "/api/models/alice/bounded/commit/main", gig, {401, 403}),  # anonymous: refused first
        ("POST", "/api/models/alice/nowhere/commit/main", {**gig, **_auth(hub)}, {404}),  # no such repo
        ("POST", "/alice/nowhere.git/info/lfs/objects/batch", gig, {404}),
        ("POST", "/api/models/alice/bounded/commit/main", {**over_upload, **_auth(hub)}, {413}),
        ("POST", "/api/models/alice/bounded/preupload/main", {**gig, **_auth(hub)}, {413}),
        ("PUT", "/api/models/alice/bounded/settings", {**gig, **_auth(hub)}, {413}),
    ]
    for method, path, headers, statuses in cases:
        status, answer, body = _raw_request(hub, _head(method, path, headers), timeout=20)
        assert status in statuses, (method, path, status, body[:300])
        if status == 413:
            assert answer["x-error-code"] == "PayloadTooLarge"
            assert "limit" in json.loads(body)["error"]


def test_chunked_bodies_are_cut_off_at_the_cap(hub):
    settings = hub.app.state.hub.settings  # type: ignore[attr-defined]
    chunk = b"x" * 65536
    frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    head = {"Transfer-Encoding": "chunked", "Content-Type": "application/json"}
    # an endless anonymous stream: answered 413 once past the cap, never buffered whole
    sent = [0]

    def endless():  # type: ignore[no-untyped-def]
        while sent[0] < 200 * 2**20:
            sent[0] += len(chunk)
            yield frame

    status, answer, _ = _raw_request(hub, _head("POST", "/api/validate-yaml", head), endless(), timeout=60)
    assert status == 413 and answer["x-error-code"] == "PayloadTooLarge"
    assert sent[0] < 200 * 2**20  # the server answered long before the stream's end
    status, answer, _ = _raw_request(
        hub, _head("POST", "/api/repos/create", {**head, **_auth(hub)}), endless(), timeout=60
    )
    assert status == 413
    assert settings.max_json_bytes < settings.max_yaml_bytes < 200 * 2**20


def test_slow_bodies_time_out(hub, monkeypatch):
    settings = hub.app.state.hub.settings  # type: ignore[attr-defined]
    monkeypatch.setattr(settings, "body_idle_timeout_seconds", 1.0)
    head = _head("POST", "/api/validate-yaml", {"Content-Length": "1000", "Content-Type": "application/json"})
    # a stall: 10 bytes, then nothing
    status, answer, _ = _raw_request(hub, head, [b'{"content"'], timeout=30)
    assert status == 408 and answer["x-error-code"] == "RequestTimeout"
    # a trickle: a byte every 0.2 s never stalls a read, but misses the deadline scaled to the size
    monkeypatch.setattr(settings, "body_idle_timeout_seconds", 5.0)
    monkeypatch.setattr(settings, "body_deadline_seconds", 1.0)

    def trickle():  # type: ignore[no-untyped-def]
        for _ in range(1000):
            time.sleep(0.2)
            yield b" "

    t = time.monotonic()
    status, _, _ = _raw_request(hub, head, trickle(), timeout=60)
    assert status == 408 and time.monotonic() - t < 30


# --- 2. nothing blocks the event loop -----------------------------------------------------------------


def test_a_large_yaml_does_not_stall_other_requests(hub, monkeypatch):
    monkeypatch.setattr(hub.app.state.hub.settings, "yaml_timeout_seconds", 300)  # type: ignore[attr-defined]
    text = "".join(f"key{i}: value {i}\n" for i in range(40_000))  # seconds of parsing
    result: dict[str, float] = {}

    def validate() -> None:
        t = time.perf_counter()
        r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": text}, timeout=300)
        result["seconds"] = time.perf_counter() - t
        result["status"] = r.status_code

    worker = threading.Thread(target=validate)
    worker.start()
    latencies = []
    with httpx.Client(timeout=300) as client:
        time.sleep(0.2)
        while worker.is_alive():
            t = time.perf_counter()
            assert client.get(f"{hub.url}/api/health").status_code == 200
            latencies.append(time.perf_counter() - t)
    worker.join()
    assert result["status"] == 200
    # with the YAML parsed on the event loop, a health check waits for the whole parse
    assert len(latencies) >= 3 and max(latencies) < result["seconds"] / 3, (latencies, result)


def test_validate_yaml_has_a_time_limit(hub, monkeypatch):
    settings = hub.app.state.hub.settings  # type: ignore[attr-defined]
    # under the card cap (1 MB), so the checker process parses it; 50 ms is less than that process takes
    # even to start (its imports alone take longer), so the limit is always reached
    text = "".join(f"key{i}: value {i}\n" for i in range(40_000))
    assert 64 * 1024 < len(text) < 1024 * 1024
    monkeypatch.setattr(settings, "yaml_timeout_seconds", 0.05)
    r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": text}, timeout=120)
    assert r.status_code == 400 and "took longer" in r.json()["error"]
    # a document over the card cap is refused at once, whatever the time limit
    monkeypatch.setattr(settings, "yaml_timeout_seconds", 120)
    big = "".join(f"key{i}: value {i}\n" for i in range(300_000))
    start = time.monotonic()
    r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": big}, timeout=120)
    assert r.status_code == 400 and "cap" in r.json()["error"], r.text
    assert time.monotonic() - start < 60
    monkeypatch.setattr(settings, "yaml_timeout_seconds", 120)
    # large documents go to the checker process, small ones stay in a thread: the same answers
    for padding in ("", "#" * 100_000 + "\n"):
        r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": padding + "a: 1\n"}, timeout=120)
        assert r.status_code == 200 and r.json() == {"errors": [], "warnings": []}
        r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": padding + "a: [1\n"}, timeout=120)
        assert r.status_code == 400 and "line" in r.json()["errors"][0]["message"]
        bad = "---\ntags: ['\udc80']\n---\n" + padding
        r = httpx.post(
            f"{hub.url}/api/validate-yaml",
            content=json.dumps({"content": bad}).encode(),
            headers={"Content-Type": "application/json"},
            timeout=120,
        )
        assert r.status_code < 500


def test_routes_that_could_block_are_not_async(hub):
    """An async route runs on the event loop: only those that stream bodies, and hand their blocking work to
    worker threads, may be async (database calls in an async route stall every other request)."""
    import inspect

    from cove.server.openapi import api_routes

    streaming = {"commit", "lfs_upload", "validate_yaml", "health", "logs"}  # logs: a space's SSE log
    routes = list(api_routes(hub.app.routes))  # type: ignore[attr-defined]
    assert len(routes) > 20
    for route in routes:
        # the inference API's routes stream bodies and await model workers; their blocking steps (tokens,
        # database, loading, tokenizing, JSON) run in worker threads, so a burst never holds the threadpool
        if route.endpoint.__module__ == "cove.server.inference.router":
            continue
        if inspect.iscoroutinefunction(route.endpoint):
            assert route.name in streaming, route.path


# --- 6. signed LFS links ------------------------------------------------------------------------------


def _lfs_file(hub: LiveHub, repo: str, data: bytes, private: bool) -> tuple[str, int]:
    import huggingface_hub.constants

    api = hub.api(headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"})
    api.create_repo(repo, private=private)
    old = huggingface_hub.constants.HF_HUB_DISABLE_XET
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    try:
        api.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id=repo)
    finally:
        huggingface_hub.constants.HF_HUB_DISABLE_XET = old
    return hashlib.sha256(data).hexdigest(), len(data)


def _batch(hub: LiveHub, repo: str, operation: str, oid: str, size: int) -> dict:  # type: ignore[type-arg]
    r = httpx.post(
        f"{hub.url}/{repo}.git/info/lfs/objects/batch",
        json={"operation": operation, "transfers": ["basic"], "objects": [{"oid": oid, "size": size}]},
        headers=_auth(hub),
    )
    assert r.status_code == 200, r.text
    return r.json()["objects"][0]


def test_signed_download_links_follow_the_repos_visibility(hub):
    data = os.urandom(5000)
    oid, size = _lfs_file(hub, "alice/vis", data, private=True)
    href = _batch(hub, "alice/vis", "download", oid, size)["actions"]["download"]["href"]
    expires = int(parse_qs(urlsplit(href).query)["expires"][0])
    assert expires - time.time() <= hub.app.state.hub.settings.lfs_download_url_seconds + 5  # type: ignore[attr-defined]
    assert httpx.get(href).content == data  # git-lfs uses it without a token
    # an upload link is not a download link, nor the other way round
    up = _batch(hub, "alice/vis", "upload", "cd" * 32, 3)["actions"]["upload"]["href"]
    assert int(parse_qs(urlsplit(up).query)["expires"][0]) - time.time() <= 3 * 3600 + 5
    assert httpx.get(up.replace("cd" * 32, oid)).status_code == 400
    assert httpx.put(href, content=data).status_code == 400
    # the repo goes public and private again: a link signed under the other visibility is dead
    api = hub.api()
    api.update_repo_settings("alice/vis", private=False)
    assert httpx.get(href).status_code == 400
    public_href = _batch(hub, "alice/vis", "download", oid, size)["actions"]["download"]["href"]
    assert httpx.get(public_href).content == data
    api.update_repo_settings("alice/vis", private=True)
    r = httpx.get(public_href)
    assert r.status_code == 400 and data not in r.content
    # a deleted repo's links are dead too
    private_href = _batch(hub, "alice/vis", "download", oid, size)["actions"]["download"]["href"]
    api.delete_repo("alice/vis")
    assert httpx.get(private_href).status_code in (400, 404)


def test_signed_links_and_tokens_stay_out_of_the_access_log(tmp_path, monkeypatch):
    """`cove serve` logs at info, with uvicorn's access log on: no signature or token reaches it."""
    from tests.server.services import cove_cli, start_serve

    settings = {"data_dir": tmp_path / "data", "lfs_threshold_bytes": 1024}
    token = cove_cli(["user", "add", "alice"], settings).strip().splitlines()[-1]
    server = start_serve(settings, tmp_path)
    try:
        live = LiveHub(url=server.url, data_dir=tmp_path, tokens={"alice": token}, app=None)
        oid, size = _lfs_file(live, "alice/logged", os.urandom(3000), private=True)
        href = _batch(live, "alice/logged", "download", oid, size)["actions"]["download"]["href"]
        assert httpx.get(href).status_code == 200
        assert httpx.get(f"{server.url}/api/models?token=secret-in-query&x=1").status_code == 200
        sig = parse_qs(urlsplit(href).query)["sig"][0]
        deadline = time.monotonic() + 10
        while "/cove-lfs/" not in server.log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        log = server.log.read_text()
    finally:
        server.stop()
    assert f"/cove-lfs/{oid}" in log  # the access log is on
    assert sig not in log and "secret-in-query" not in log and token not in log
    assert "sig=REDACTED" in log


# --- 8. typed bodies: 4xx, never 500 ------------------------------------------------------------------


def test_wrong_types_get_4xx_naming_the_field(hub):
    auth = _auth(hub)
    r = httpx.post(f"{hub.url}/api/repos/create", json={"name": "stringly", "private": "false"}, headers=auth)
    assert r.status_code == 422 and "private" in r.json()["error"]
    assert r.headers["X-Error-Code"] == "UnprocessableEntity"
    assert not hub.api().repo_exists("alice/stringly")
    hub.api().create_repo("alice/typed")
    r = httpx.post(f"{hub.url}/api/models/alice/typed/branch/dev", json={"startingPoint": 5}, headers=auth)
    assert r.status_code == 422 and "startingPoint" in r.json()["error"]
    r = httpx.post(
        f"{hub.url}/alice/typed.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": [1, "x"]},
        headers=auth,
    )
    assert r.status_code == 422 and "objects" in r.json()["error"]
    lines = [{"key": "header", "value": {"summary": "copy"}}, {"key": "copyFile", "value": {"path": "b"}}]
    r = httpx.post(
        f"{hub.url}/api/models/alice/typed/commit/main",
        content="\n".join(json.dumps(x) for x in lines).encode(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 422 and "srcPath" in r.json()["error"]
    assert hub.api().list_repo_files("alice/typed") == [".gitattributes"]


def test_forced_lfs_mode_never_strands_a_xet_capable_client(hub, monkeypatch):
    """huggingface_hub >= 1.20 with hf_xet takes every "lfs" answer to Xet, which Cove does not speak: the
    X-Cove-Upload-Mode: lfs header must not send it there."""
    import huggingface_hub
    import huggingface_hub.constants

    pytest.importorskip("hf_xet")
    assert tuple(int(x) for x in huggingface_hub.__version__.split(".")[:2]) >= (1, 20)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", False)
    api = hub.api(headers={"X-Cove-Upload-Mode": "lfs"})
    api.create_repo("alice/xet-client")
    data = os.urandom(4096)  # over the hub's 1 KiB LFS threshold
    api.upload_file(path_or_fileobj=data, path_in_repo="big.bin", repo_id="alice/xet-client")
    r = httpx.get(f"{hub.url}/alice/xet-client/resolve/main/big.bin")
    assert r.content == data


# --- data dir permissions -----------------------------------------------------------------------------


def test_data_dir_and_secrets_are_private(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    old = os.umask(0o022)
    try:
        _, server, thread = start_hub(data)
    finally:
        os.umask(old)
    try:
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        assert stat.S_IMODE((data / "hub.sqlite").stat().st_mode) == 0o600
        assert stat.S_IMODE((data / "server-secret").stat().st_mode) == 0o600
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


# --- the published schema describes every body ---------------------------------------------------------


def test_openapi_describes_the_typed_bodies(hub):
    spec = httpx.get(f"{hub.url}/api/openapi.json").json()
    bodies = {
        (path, method): op["requestBody"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if "requestBody" in op
    }
    assert bodies[("/api/repos/create", "post")]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CreateRepoRequest"
    }
    create = spec["components"]["schemas"]["CreateRepoRequest"]
    assert create["required"] == ["name"] and "private" in create["properties"]
    for path, method in [
        ("/api/validate-yaml", "post"),
        ("/api/repos/delete", "delete"),
        ("/api/repos/move", "post"),
        ("/api/{kind}/{namespace}/{name}/settings", "put"),
        ("/api/{kind}/{namespace}/{name}/branch/{branch}", "post"),
        ("/api/{kind}/{namespace}/{name}/tag/{revision}", "post"),
        ("/api/{kind}/{namespace}/{name}/preupload/{revision}", "post"),
        ("/api/{kind}/{namespace}/{name}/paths-info/{revision}", "post"),
        ("/api/{kind}/{namespace}/{name}/commit/{revision}", "post"),
        ("/{namespace}/{name}.git/info/lfs/objects/batch", "post"),
        ("/cove-lfs/{oid}/verify", "post"),
    ]:
        assert (path, method) in bodies, (path, method)
