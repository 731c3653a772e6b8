"""`cove import`: a real huggingface_hub cache (downloaded by huggingface_hub from a live Cove hub) imported
into the embedded hub and into a second running hub, with every revision, ref and file kept; damaged and
half-downloaded revisions skipped; folders and single files; the not-found message of from_pretrained."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest
import torch

import cove
from cove.cli.main import main as cove_main
from cove.errors import HubRequestError, MissingFileError, ModelNotFoundError
from cove.hub import client
from cove.hub.importer import import_path
from cove.store import RepoStore
from tests.server.conftest import start_hub
from tests.training.helpers import tiny_model

pytestmark = [pytest.mark.server]

REPO = "alice/tiny"
DATASET = "alice/data"


@pytest.fixture(scope="module")
def online():
    """tests/conftest.py turns offline mode on; these tests talk only to 127.0.0.1 hubs they start."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        mp.delenv("HF_HUB_OFFLINE", raising=False)
        mp.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        for key in ("COVE_ENDPOINT", "HF_ENDPOINT", "COVE_TOKEN", "HF_TOKEN"):
            mp.delenv(key, raising=False)
        yield


@pytest.fixture(scope="module")
def source(online, tmp_path_factory):
    """A live hub holding a model with three commits (tag v1 on the first) and a dataset, and the
    huggingface_hub cache that downloading them made: main, v1, the second commit by hash, the dataset."""
    from huggingface_hub import snapshot_download

    hub, server, thread = start_hub(
        tmp_path_factory.mktemp("source-hub"), upload_mode="lfs", lfs_threshold_bytes=1024
    )
    api = hub.api()
    token = hub.tokens["alice"]
    work = tmp_path_factory.mktemp("source-files")
    model = tiny_model(seed=3)
    model.save_pretrained(work / "model")

    # uploads through Cove's client, whose git-LFS upload this hub takes (huggingface_hub >= 1 would use Xet)
    def upload(repo_id: str, files: dict[str, bytes] | Path, repo_type: str = "model") -> str:
        if isinstance(files, Path):
            client.upload_folder(repo_id, files, token=token, repo_type=repo_type, endpoint=hub.url)
        else:
            for path, data in files.items():
                client.upload_file(repo_id, data, path, token=token, repo_type=repo_type, endpoint=hub.url)
        return api.repo_info(repo_id, repo_type=repo_type).sha

    api.create_repo(REPO)
    api.create_repo(DATASET, repo_type="dataset")
    first = upload(REPO, work / "model")  # model.safetensors (79 KB) goes to LFS, config.json stays regular
    api.create_tag(REPO, tag="v1", revision=first)
    second = upload(REPO, {"README.md": b"# tiny\n"})
    third = upload(REPO, {"README.md": b"# tiny, v2\n", "docs/notes.txt": b"notes\n"})
    upload(DATASET, {"train.csv": b"text,label\nhi,1\n"}, repo_type="dataset")
    cache = tmp_path_factory.mktemp("hf-cache")
    for revision in ("main", "v1", second):
        snapshot_download(REPO, revision=revision, cache_dir=cache, endpoint=hub.url, token=token)
    snapshot_download(DATASET, repo_type="dataset", cache_dir=cache, endpoint=hub.url, token=token)
    local_dir = work / "local-dir"
    snapshot_download(REPO, local_dir=local_dir, endpoint=hub.url, token=token)
    yield {
        "hub": hub,
        "cache": cache,
        "commits": {"v1": first, "second": second, "main": third},
        "model": model,
        "local_dir": local_dir,
    }
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


def _snapshot_files(cache: Path, repo_folder: str, commit: str) -> dict[str, bytes]:
    snap = cache / repo_folder / "snapshots" / commit
    return {p.relative_to(snap).as_posix(): p.read_bytes() for p in sorted(snap.rglob("*")) if p.is_file()}


def _hub_files(store: RepoStore, repo_type: str, repo_id: str, revision: str) -> dict[str, bytes]:
    with store.session() as s:
        repo = store.get_repo(s, repo_type, repo_id)
        tree = store.tree(s, store.resolve(s, repo, revision))
    return {path: store.blobs.read(entry.sha256) for path, entry in tree.items()}


def _refs(store: RepoStore, repo_type: str, repo_id: str) -> dict[tuple[str, str], str]:
    with store.session() as s:
        rows = store.refs(s, store.get_repo(s, repo_type, repo_id))
    return {(r.kind, r.name): r.commit_id for r in rows}


def test_cache_into_the_embedded_hub_keeps_every_revision_and_ref(source, tmp_path, monkeypatch):
    cache, commits = source["cache"], source["commits"]
    lines: list[str] = []
    report = import_path(cache, data_dir=tmp_path / "hub", log=lines.append, progress=False)
    assert not report.skipped
    assert {(r.repo_id, r.source) for r in report.imported} == {
        (REPO, commits["v1"]),
        (REPO, commits["second"]),
        (REPO, commits["main"]),
        (DATASET, next(iter((cache / "datasets--alice--data" / "snapshots").iterdir())).name),
    }
    store = RepoStore(tmp_path / "hub")
    refs = _refs(store, "model", REPO)
    # the cache's refs as branches, every cache commit as an hf-<hash> tag
    assert {name for kind, name in refs if kind == "branch"} == {"main", "v1"}
    assert {name for kind, name in refs if kind == "tag"} == {f"hf-{c}" for c in commits.values()}
    assert refs[("branch", "main")] == refs[("tag", f"hf-{commits['main']}")]
    assert refs[("branch", "v1")] == refs[("tag", f"hf-{commits['v1']}")]
    for commit in commits.values():  # each revision holds exactly its snapshot's files
        assert _hub_files(store, "model", REPO, f"hf-{commit}") == _snapshot_files(
            cache, "models--alice--tiny", commit
        )
    with store.session() as s:
        info = store.get_commit(s, refs[("tag", f"hf-{commits['v1']}")])
        tree = store.tree(s, refs[("branch", "main")])
    assert f"huggingface_hub commit: {commits['v1']}" in info.message
    # blob kinds and ETags kept: LFS by sha256, regular files by git sha1, as the cache names them
    blobs = {p.name for p in (cache / "models--alice--tiny" / "blobs").iterdir()}
    assert tree["model.safetensors"].lfs and tree["model.safetensors"].sha256 in blobs
    assert not tree["config.json"].lfs and tree["config.json"].oid in blobs
    store.engine.dispose()
    # Cove loads the imported model from the embedded hub by its name
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "hub"))
    loaded = cove.AutoModelForSequenceClassification.from_pretrained(REPO)
    for name, tensor in source["model"].state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    older = cove.AutoConfig.from_pretrained(REPO, revision="v1")
    assert older.num_labels == 2
    assert any("3 revision(s)" in line for line in lines)
    # importing again changes nothing
    again = import_path(cache, data_dir=tmp_path / "hub", progress=False)
    assert not again.imported and len(again.unchanged) == 4
    store = RepoStore(tmp_path / "hub")
    assert _refs(store, "model", REPO) == refs
    store.engine.dispose()


def test_cache_into_a_running_hub_is_read_back_by_huggingface_hub(source, tmp_path_factory, tmp_path):
    from huggingface_hub import HfApi, snapshot_download

    cache, commits = source["cache"], source["commits"]
    target, server, thread = start_hub(tmp_path_factory.mktemp("target-hub"), lfs_threshold_bytes=1024)
    try:
        report = import_path(cache, endpoint=target.url, token=target.tokens["alice"], progress=False)
        assert len(report.imported) == 4 and not report.skipped
        api = HfApi(endpoint=target.url, token=target.tokens["alice"])
        refs = api.list_repo_refs(REPO)
        assert {b.name for b in refs.branches} == {"main", "v1"}
        assert {t.name for t in refs.tags} == {f"hf-{c}" for c in commits.values()}
        # the stock client downloads each revision and gets the cache's files and blob names back
        fresh = tmp_path / "fresh-cache"
        for label, commit in commits.items():
            revision = label if label in ("main", "v1") else f"hf-{commit}"
            folder = Path(snapshot_download(REPO, revision=revision, cache_dir=fresh, endpoint=target.url,
                                            token=target.tokens["alice"]))  # fmt: skip
            got = {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
            assert got == _snapshot_files(cache, "models--alice--tiny", commit), label
        assert {p.name for p in (fresh / "models--alice--tiny" / "blobs").iterdir()} == {
            p.name for p in (cache / "models--alice--tiny" / "blobs").iterdir()
        }
        data = Path(snapshot_download(DATASET, repo_type="dataset", cache_dir=fresh, endpoint=target.url,
                                      token=target.tokens["alice"]))  # fmt: skip
        assert (data / "train.csv").read_bytes() == b"text,label\nhi,1\n"
        again = import_path(cache, endpoint=target.url, token=target.tokens["alice"], progress=False)
        assert not again.imported and len(again.unchanged) == 4
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


def _age(path: Path, seconds_ago: float) -> None:
    """Set the mtimes of a snapshot's entries (links themselves, not their blobs)."""
    when = time.time() - seconds_ago
    for entry in [path, *path.rglob("*")]:
        os.utime(entry, (when, when), follow_symlinks=False)


def test_damaged_and_half_downloaded_revisions_are_skipped_whole(source, tmp_path):
    commits = source["commits"]
    cache = tmp_path / "cache"
    shutil.copytree(source["cache"], cache, symlinks=True)
    repo = cache / "models--alice--tiny"
    for snapshot in (repo / "snapshots").iterdir():
        _age(snapshot, 3600)
    # main's README blob damaged (same size, other bytes)
    readme = (repo / "snapshots" / commits["main"] / "README.md").resolve()
    readme.write_bytes(b"X" * readme.stat().st_size)
    # a revision whose link points at a blob that is gone
    broken = repo / "snapshots" / ("b" * 40)
    broken.mkdir()
    (broken / "config.json").symlink_to("../../blobs/" + "0" * 40)
    _age(broken, 1800)
    # the newest revision was being downloaded: one file done, another's blob still .incomplete
    partial = repo / "snapshots" / ("c" * 40)
    partial.mkdir()
    config = (repo / "snapshots" / commits["v1"] / "config.json").resolve()
    (partial / "config.json").symlink_to(os.path.relpath(config, partial))
    _age(partial, 60)
    (repo / "blobs" / ("d" * 64 + ".incomplete")).write_bytes(b"half")
    (repo / "refs" / "main").write_text("c" * 40)  # huggingface_hub writes the ref before downloading
    # an older interrupted download that huggingface_hub's file list (trees/<commit>.json) pins down
    config_blob = config.name
    listed = repo / "snapshots" / ("f" * 40)
    listed.mkdir()
    (listed / "config.json").symlink_to(os.path.relpath(config, listed))
    _age(listed, 7200)
    listing = {
        "config.json": {"size": config.stat().st_size, "blob_id": config_blob},
        "model.safetensors": {"size": 9, "blob_id": "1" * 40, "lfs_sha256": "9" * 64, "lfs_size": 9},
    }
    trees = repo / "trees"
    (trees / f"{'f' * 40}.json").write_text(json.dumps({"format_version": 1, "files": listing}))
    partial_blob = repo / "blobs" / ("9" * 64 + ".1a2b3c4d.incomplete")
    partial_blob.write_bytes(b"half")
    os.utime(partial_blob, (time.time() - 7000, time.time() - 7000))
    # a download that asked for config.json only (allow_patterns): imported, the rest noted as never downloaded
    chosen = repo / "snapshots" / ("a" * 40)
    chosen.mkdir()
    (chosen / "config.json").symlink_to(os.path.relpath(config, chosen))
    _age(chosen, 5000)
    other = {"size": 5, "blob_id": "2" * 40, "lfs_sha256": "8" * 64, "lfs_size": 5}
    only_config = {"config.json": listing["config.json"], "model.safetensors": other, "x.txt": other}
    (trees / f"{'a' * 40}.json").write_text(json.dumps({"format_version": 1, "files": only_config}))
    (repo / "refs" / "only-config").write_text("a" * 40)
    (repo / "refs" / "ghost").write_text("e" * 40)  # a ref whose download never wrote a file

    report = import_path(cache, data_dir=tmp_path / "hub", progress=False)
    reasons = {r.source: r.reason for r in report.skipped}
    assert set(reasons) == {commits["main"], "b" * 40, "c" * 40, "e" * 40, "f" * 40}
    assert "1a2b3c4d.incomplete" in reasons["f" * 40]
    assert "damaged" in reasons[commits["main"]] and "README.md" in reasons[commits["main"]]
    assert "missing" in reasons["b" * 40] and "config.json" in reasons["b" * 40]
    assert ".incomplete" in reasons["c" * 40] and "interrupted" in reasons["c" * 40]
    assert "no snapshot" in reasons["e" * 40]
    assert {(r.repo_id, r.source) for r in report.imported} >= {
        (REPO, commits["v1"]),
        (REPO, commits["second"]),
    }
    store = RepoStore(tmp_path / "hub")
    refs = _refs(store, "model", REPO)
    # nothing of the skipped revisions: no tag, main untouched (the initial commit's .gitattributes only)
    assert {name for kind, name in refs if kind == "tag"} == {
        f"hf-{c}" for c in (commits["v1"], commits["second"], "a" * 40)
    }
    chosen_import = next(r for r in report.imported if r.source == "a" * 40)
    assert chosen_import.missing == ("model.safetensors", "x.txt") and chosen_import.refs == ("only-config",)
    assert set(_hub_files(store, "model", REPO, "only-config")) == {".gitattributes", "config.json"}
    assert set(_hub_files(store, "model", REPO, "main")) == {".gitattributes"}
    store.engine.dispose()
    # the CLI reports the skipped revisions and exits 1
    assert cove_main(["import", str(cache), "--data-dir", str(tmp_path / "hub2"), "--quiet"]) == 1


def test_cache_repos_named_without_an_organisation(source, tmp_path):
    cache = tmp_path / "cache"
    for name in ("models--gpt2", "models--mystery"):
        shutil.copytree(source["cache"] / "models--alice--tiny", cache / name, symlinks=True)
    report = import_path(cache, data_dir=tmp_path / "hub", progress=False, namespace="acme")
    assert {r.repo_id for r in report.imported} == {"openai-community/gpt2", "acme/mystery"}
    only = import_path(cache, repo_id="openai-community/gpt2", data_dir=tmp_path / "hub2", progress=False)
    assert {r.repo_id for r in only.imported} == {"openai-community/gpt2"}
    with pytest.raises(HubRequestError, match="holds no repo"):
        import_path(cache, repo_id="alice/absent", data_dir=tmp_path / "hub3", progress=False)


def test_a_folder_and_single_files(source, tmp_path, monkeypatch):
    hub = tmp_path / "hub"
    folder = tmp_path / "my-model"
    source["model"].save_pretrained(folder)
    assert cove_main(["import", str(folder), "--repo-id", "me/tiny", "--data-dir", str(hub), "--quiet"]) == 0
    monkeypatch.setenv("COVE_DATA_DIR", str(hub))
    loaded = cove.AutoModelForSequenceClassification.from_pretrained("me/tiny")
    assert torch.equal(loaded.classifier.weight, source["model"].classifier.weight)
    # a huggingface_hub local_dir download: its recorded commit is kept as a tag
    report = import_path(source["local_dir"], repo_id="me/local", data_dir=hub, progress=False)
    store = RepoStore(hub)
    assert ("tag", f"hf-{source['commits']['main']}") in _refs(store, "model", "me/local")
    assert ".cache/huggingface" not in " ".join(_hub_files(store, "model", "me/local", "main"))
    assert report.imported[0].files == len(
        _snapshot_files(source["cache"], "models--alice--tiny", source["commits"]["main"])
    )
    # single files are wrapped into a repo
    weights = folder / "model.safetensors"
    import_path(weights, repo_id="me/weights", data_dir=hub, progress=False)
    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))
    import_path(gguf, repo_id="me/gguf", data_dir=hub, progress=False)
    assert set(_hub_files(store, "model", "me/weights", "main")) == {".gitattributes", "model.safetensors"}
    assert _hub_files(store, "model", "me/gguf", "main")["tiny.gguf"] == gguf.read_bytes()
    store.engine.dispose()


def test_bad_paths_are_refused_clearly(tmp_path):
    hub = tmp_path / "hub"
    with pytest.raises(MissingFileError, match="does not exist"):
        import_path(tmp_path / "nothing", repo_id="me/x", data_dir=hub)
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("buy milk")
    with pytest.raises(HubRequestError, match=r"neither a model folder.*nor a huggingface_hub cache"):
        import_path(notes, repo_id="me/x", data_dir=hub)
    with pytest.raises(HubRequestError, match="--repo-id"):
        import_path(notes, data_dir=hub)
    with pytest.raises(HubRequestError, match="neither a model folder"):
        import_path(notes / "todo.txt", repo_id="me/x", data_dir=hub)
    fake = tmp_path / "fake.safetensors"
    fake.write_bytes(b"not a safetensors file at all")
    with pytest.raises(HubRequestError, match="not a safetensors file"):
        import_path(fake, repo_id="me/x", data_dir=hub)
    fake_gguf = tmp_path / "fake.gguf"
    fake_gguf.write_bytes(b"GGML....")
    with pytest.raises(HubRequestError, match="not a GGUF file"):
        import_path(fake_gguf, repo_id="me/x", data_dir=hub)
    with pytest.raises(HubRequestError, match="Invalid repo id"):
        import_path(notes, repo_id="no-namespace", data_dir=hub)
    # the dataset kind accepts a folder of text files
    report = import_path(notes, repo_id="me/notes", repo_type="dataset", data_dir=hub, progress=False)
    assert report.imported[0].repo_type == "dataset"


def test_a_name_found_nowhere_says_how_to_bring_it_in(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    for key in ("COVE_ENDPOINT", "HF_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(ModelNotFoundError) as bare:
        cove.AutoModelForCausalLM.from_pretrained("gpt2")
    message = str(bare.value)
    assert "cove import ~/.cache/huggingface/hub" in message
    assert "--repo-id openai-community/gpt2" in message and "push_to_hub('openai-community/gpt2')" in message
    assert "models--gpt2 is imported as 'openai-community/gpt2'" in message
    with pytest.raises(ModelNotFoundError, match=r"cove upload someone/model \./folder"):
        cove.AutoTokenizer.from_pretrained("someone/model")
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        cove.AutoModel.from_pretrained("./no/such/folder")
