"""kill -9 a `cove serve` mid-upload and mid-commit, restart it: every repo is at its old commit or the new
one, never between; no partial file is served; the retried upload succeeds; `cove gc` collects what the
crash (and a refused commit) left behind. For SQLite + disk and for PostgreSQL + S3."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.server.services import cove_cli, start_serve

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _settings(backend: str, request, tmp_path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    settings: dict[str, object] = {"data_dir": tmp_path / "data", "lfs_threshold_bytes": 1024}
    if backend == "postgres":
        settings["database_url"] = request.getfixturevalue("postgres").new_database()
        settings.update(request.getfixturevalue("seaweed").new_bucket_settings())
        cove_cli(["db", "upgrade"], settings)
    return settings


def _store(settings):  # type: ignore[no-untyped-def]
    from cove.server.app import open_hub
    from cove.server.settings import Settings

    return open_hub(Settings(**settings)).store


def _stalled_body(parts: list[bytes], stall_after: int, stalled: threading.Event, release: threading.Event):
    """A request body that sends parts[:stall_after], then waits (the server is killed meanwhile)."""
    for i, part in enumerate(parts):
        if i == stall_after:
            stalled.set()
            release.wait(60)
        yield part


def _send_and_kill(server, method: str, url: str, parts: list[bytes], stall_after: int, delay: float) -> None:  # type: ignore[no-untyped-def]
    stalled, release = threading.Event(), threading.Event()
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.request(
                    method, url, content=_stalled_body(parts, stall_after, stalled, release), timeout=60
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=send)
    thread.start()
    assert stalled.wait(60)
    time.sleep(delay)  # let the server work on what it received
    server.kill9()
    release.set()
    thread.join(60)
    assert outcome and isinstance(outcome[0], httpx.HTTPError), outcome  # the request died with the server


def _tree(url: str, repo: str, rev: str) -> dict[str, str]:
    items = httpx.get(f"{url}/api/models/{repo}/tree/{rev}", params={"recursive": "1"}).json()
    return {e["path"]: e["oid"] for e in items if e["type"] == "file"}


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_kill9_mid_upload_and_mid_commit_then_restart_and_gc(backend, request, tmp_path, monkeypatch):
    import huggingface_hub.constants
    from huggingface_hub import HfApi, hf_hub_download

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    settings = _settings(backend, request, tmp_path)
    token = cove_cli(["user", "add", "alice"], settings).strip().splitlines()[-1]
    server = start_serve(settings, tmp_path)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        api = HfApi(
            endpoint=server.url,
            token=token,
            headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"},
        )
        api.create_repo("alice/crash")
        c0 = api.upload_file(path_or_fileobj=b"kept", path_in_repo="keep.txt", repo_id="alice/crash").oid

        # 1. kill -9 in the middle of an LFS upload (30 of 40 MiB sent, the store writing)
        big = os.urandom(40 * 1024**2)
        oid = hashlib.sha256(big).hexdigest()
        batch = httpx.post(
            f"{server.url}/alice/crash.git/info/lfs/objects/batch",
            json={"operation": "upload", "objects": [{"oid": oid, "size": len(big)}]},
            headers=headers,
        ).json()
        href = batch["objects"][0]["actions"]["upload"]["href"]
        chunks = [big[i : i + 2 * 1024**2] for i in range(0, len(big), 2 * 1024**2)]
        _send_and_kill(server, "PUT", href, chunks, stall_after=15, delay=1.0)
        assert not _store(settings).blobs.exists(oid)  # no partial blob under the object's name

        server = start_serve(settings, tmp_path)
        api = HfApi(
            endpoint=server.url,
            token=token,
            headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"},
        )
        assert api.model_info("alice/crash").sha == c0
        r = httpx.get(f"{server.url}/alice/crash/resolve/main/big.bin")
        assert r.status_code == 404
        # the retried upload, with the real client, succeeds
        c1 = api.upload_file(path_or_fileobj=big, path_in_repo="big.bin", repo_id="alice/crash").oid
        got = hf_hub_download(
            "alice/crash", "big.bin", endpoint=server.url, token=token, cache_dir=tmp_path / "c"
        )
        assert hashlib.sha256(Path(got).read_bytes()).hexdigest() == oid

        # 2. kill -9 in the middle of a commit: 24 regular files of 1 MiB, the server storing them
        files = {f"batch/f{i:02d}.bin": os.urandom(1024**2) for i in range(24)}
        lines = [json.dumps({"key": "header", "value": {"summary": "big batch"}}).encode() + b"\n"]
        for path, data in files.items():
            value = {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"}
            lines.append(json.dumps({"key": "file", "value": value}).encode() + b"\n")
        url = f"{server.url}/api/models/alice/crash/commit/main"
        sent = threading.Event()

        def ndjson():  # type: ignore[no-untyped-def]
            yield from lines
            sent.set()

        def send_all() -> None:
            with contextlib.suppress(httpx.HTTPError):
                httpx.post(
                    url,
                    content=ndjson(),
                    headers={**headers, "Content-Type": "application/x-ndjson"},
                    timeout=60,
                )

        sender = threading.Thread(target=send_all)
        sender.start()
        assert sent.wait(60)
        time.sleep(0.2)  # the whole body is in: the server is storing the files and committing
        server.kill9()
        sender.join(60)

        server = start_serve(settings, tmp_path)
        api = HfApi(endpoint=server.url, token=token)
        head = api.model_info("alice/crash").sha
        tree = _tree(server.url, "alice/crash", "main")
        before = {".gitattributes", "keep.txt", "big.bin"}
        if head == c1:  # the commit did not land: nothing of it is visible
            assert set(tree) == before
        else:  # it landed whole, on top of c1
            assert api.list_repo_commits("alice/crash")[1].commit_id == c1
            assert set(tree) == before | set(files)
            for path, data in list(files.items())[::6]:
                assert httpx.get(f"{server.url}/alice/crash/resolve/main/{path}").content == data

        # 3. a refused commit (it names an LFS object never uploaded) stores its regular file first
        orphan = os.urandom(4096)
        refused = [
            {"key": "header", "value": {"summary": "refused"}},
            {"key": "file", "value": {"path": "orphan.bin", "content": base64.b64encode(orphan).decode()}},
            {
                "key": "lfsFile",
                "value": {"path": "missing.bin", "oid": "ab" * 32, "size": 3, "algo": "sha256"},
            },
        ]
        r = httpx.post(
            f"{server.url}/api/models/alice/crash/commit/main",
            content="\n".join(json.dumps(x) for x in refused),
            headers={**headers, "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 400 and api.model_info("alice/crash").sha == head
        orphan_sha = hashlib.sha256(orphan).hexdigest()
        assert _store(settings).blobs.exists(orphan_sha)

        # 4. cove gc removes what nothing refers to, and only that
        out = cove_cli(["gc", "--grace-seconds", "0"], settings)
        deleted = int(out.split("deleted ")[1].split()[0])
        dropped = int(out.split("dropped ")[1].split()[0])
        print(
            f"{backend}: mid-commit kill {'before' if head == c1 else 'after'} the commit landed; gc: {out}"
        )
        assert deleted >= 1 and dropped >= 1, out  # the refused commit's blob; the killed upload's leftovers
        store = _store(settings)
        assert not store.blobs.exists(orphan_sha)
        for commit in api.list_repo_commits("alice/crash"):
            for path, blob_oid in _tree(server.url, "alice/crash", commit.commit_id).items():
                body = httpx.get(f"{server.url}/alice/crash/resolve/{commit.commit_id}/{path}").content
                if path == "big.bin":
                    assert hashlib.sha256(body).hexdigest() == oid
                else:
                    assert hashlib.sha1(b"blob %d\0" % len(body) + body).hexdigest() == blob_oid
        # nothing unfinished is left either: a second gc finds nothing to do
        again = cove_cli(["gc", "--grace-seconds", "0"], settings)
        assert "deleted 0 unreferenced" in again and "dropped 0 unfinished" in again
    finally:
        server.stop()
