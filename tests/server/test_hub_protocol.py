"""The HF Hub protocol, driven by the real huggingface_hub client against a live Cove hub."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path

import httpx
import pytest
from huggingface_hub import hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = pytest.mark.server

README = """---
license: apache-2.0
pipeline_tag: text-classification
library_name: transformers
tags: [cove-test, tiny]
datasets: [acme/reviews]
base_model: acme/base
model-index:
- name: tiny
  results:
  - task: {type: text-classification}
    dataset: {name: reviews, type: acme/reviews}
    metrics: [{type: accuracy, value: 0.5}]
---
# Tiny model
"""


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "upload"
    (folder / "sub").mkdir(parents=True)
    (folder / "config.json").write_text('{"model_type": "bert"}')
    (folder / "README.md").write_text(README)
    (folder / "sub" / "weights.bin").write_bytes(bytes(range(256)) * 40)  # 10240 bytes, over the threshold
    return folder


def test_whoami_and_bad_token(hub):
    me = hub.api().whoami()
    assert me["name"] == "alice"
    assert {o["name"]: o["roleInOrg"] for o in me["orgs"]} == {"acme": "write"}
    assert me["auth"]["accessToken"]["role"] == "write"
    with pytest.raises(HfHubHTTPError) as err:
        hub.api(user=None, token="cove_not-a-real-token").whoami()
    assert err.value.response.status_code == 401
    r = httpx.get(f"{hub.url}/api/models/alice/anything", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and "Invalid credentials" in r.json()["error"]


def test_create_repo_public_private_exist_ok(hub, tmp_path):
    api = hub.api()
    url = api.create_repo("alice/create-me")
    assert url.repo_id == "alice/create-me"
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo("alice/create-me")
    assert err.value.response.status_code == 409
    assert api.create_repo("alice/create-me", exist_ok=True).repo_id == "alice/create-me"
    api.create_repo("alice/secret", private=True)
    assert api.model_info("alice/secret").private is True
    # anonymous callers and other users see a private repo as missing, never as forbidden
    for other in (hub.api(user=None), hub.api(user="bob")):
        with pytest.raises(RepositoryNotFoundError):
            other.model_info("alice/secret")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/secret", ".gitattributes", endpoint=hub.url, token=False, cache_dir=tmp_path)
    r = httpx.get(f"{hub.url}/alice/secret/resolve/main/.gitattributes")
    assert r.status_code == 404 and r.headers["X-Error-Code"] == "RepoNotFound"
    # nor does it show in listings
    assert "alice/secret" not in {m.id for m in hub.api(user=None).list_models(author="alice")}
    assert "alice/secret" in {m.id for m in api.list_models(author="alice")}
    # dataset and space repos are separate namespaces of names
    assert api.create_repo("alice/create-me", repo_type="dataset").repo_type == "dataset"
    api.create_repo("alice/app", repo_type="space", space_sdk="static")
    assert api.space_info("alice/app").id == "alice/app"


def test_upload_folder_regular_path_and_downloads(hub, tmp_path):
    api = hub.api()
    api.create_repo("alice/tiny")
    folder = _folder(tmp_path)
    commit = api.upload_folder(repo_id="alice/tiny", folder_path=folder, commit_message="add model")
    info = api.model_info("alice/tiny", files_metadata=True)
    assert info.sha == commit.oid
    sizes = {s.rfilename: s.size for s in info.siblings}
    assert sizes["sub/weights.bin"] == 10240 and sizes["config.json"] == len('{"model_type": "bert"}')
    # an hf_hub 2.x client gets "regular" for large files: it would push "lfs" ones through Xet
    assert next(s for s in info.siblings if s.rfilename == "sub/weights.bin").lfs is None
    assert info.card_data["license"] == "apache-2.0"
    assert info.pipeline_tag == "text-classification"
    assert info.config == {"model_type": "bert"}
    assert info.card_data.eval_results[0].metric_value == 0.5  # model-index, parsed by the client
    assert "cove-test" in info.tags and "dataset:acme/reviews" in info.tags
    path = hf_hub_download("alice/tiny", "sub/weights.bin", endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == (folder / "sub" / "weights.bin").read_bytes()
    snap = snapshot_download("alice/tiny", endpoint=hub.url, cache_dir=tmp_path / "cache2", token=False)
    assert sorted(p.relative_to(snap).as_posix() for p in Path(snap).rglob("*") if p.is_file()) == [
        ".gitattributes",
        "README.md",
        "config.json",
        "sub/weights.bin",
    ]
    assert Path(snap).name == commit.oid  # snapshots are keyed by the commit, as huggingface_hub's cache is
    # preupload reports current oids, so re-uploading identical files makes no new commit
    before = len(api.list_repo_commits("alice/tiny"))
    api.upload_folder(repo_id="alice/tiny", folder_path=folder, commit_message="again")
    assert len(api.list_repo_commits("alice/tiny")) == before


def test_lfs_upload_basic_transfer(hub, tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    api = hub.api(
        headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"}
    )  # as the server's upload_mode=lfs would answer
    api.create_repo("alice/lfs")
    data = b"large file content " * 1000
    api.upload_file(path_or_fileobj=data, path_in_repo="model.safetensors", repo_id="alice/lfs")
    (entry,) = api.get_paths_info("alice/lfs", ["model.safetensors"])
    assert entry.lfs is not None and entry.lfs.sha256 == hashlib.sha256(data).hexdigest()
    assert entry.lfs.size == len(data)
    r = httpx.head(f"{hub.url}/alice/lfs/resolve/main/model.safetensors")
    assert r.headers["X-Linked-Etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert int(r.headers["X-Linked-Size"]) == len(data)
    path = hf_hub_download("alice/lfs", "model.safetensors", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert Path(path).read_bytes() == data
    # uploading the same content again needs no transfer and yields the same LFS oid
    api.upload_file(path_or_fileobj=data, path_in_repo="copy.safetensors", repo_id="alice/lfs")
    (copy,) = api.get_paths_info("alice/lfs", ["copy.safetensors"])
    assert copy.lfs.sha256 == entry.lfs.sha256
    # upload_folder takes the same path: the small file regular, the large one LFS
    folder = _folder(tmp_path)
    api.upload_folder(repo_id="alice/lfs", folder_path=folder, path_in_repo="folder")
    infos = {
        e.path: e for e in api.get_paths_info("alice/lfs", ["folder/config.json", "folder/sub/weights.bin"])
    }
    assert infos["folder/config.json"].lfs is None
    weights = (folder / "sub" / "weights.bin").read_bytes()
    assert infos["folder/sub/weights.bin"].lfs.sha256 == hashlib.sha256(weights).hexdigest()
    got = hf_hub_download("alice/lfs", "folder/sub/weights.bin", endpoint=hub.url, cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == weights


def test_branches_tags_history_and_downloads_by_revision(hub, tmp_path):
    api = hub.api()
    api.create_repo("alice/versions")
    c1 = api.upload_file(path_or_fileobj=b"v1", path_in_repo="file.txt", repo_id="alice/versions").oid
    api.create_tag("alice/versions", tag="v1.0", tag_message="first")
    api.create_branch("alice/versions", branch="feature/x")  # '/' travels as %2F
    c2 = api.upload_file(path_or_fileobj=b"v2", path_in_repo="file.txt", repo_id="alice/versions").oid
    api.upload_file(
        path_or_fileobj=b"fx", path_in_repo="file.txt", repo_id="alice/versions", revision="feature/x"
    )
    refs = api.list_repo_refs("alice/versions")
    assert {b.name: b.target_commit for b in refs.branches}["main"] == c2
    assert {t.name: t.target_commit for t in refs.tags} == {"v1.0": c1}
    assert "feature/x" in {b.name for b in refs.branches}
    commits = api.list_repo_commits("alice/versions")
    assert [c.commit_id for c in commits[:2]] == [c2, c1] and commits[-1].title == "initial commit"
    cache = tmp_path / "cache"

    def read(rev):
        return Path(
            hf_hub_download("alice/versions", "file.txt", revision=rev, endpoint=hub.url, cache_dir=cache)
        )

    assert read("main").read_bytes() == b"v2"
    assert read("v1.0").read_bytes() == b"v1"
    assert read(c1).read_bytes() == b"v1"
    assert read("feature/x").read_bytes() == b"fx"
    assert api.model_info("alice/versions", revision="v1.0").sha == c1
    with pytest.raises(RevisionNotFoundError):
        read("no-such-branch")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/versions", "missing.txt", endpoint=hub.url, cache_dir=cache)
    api.delete_file("file.txt", repo_id="alice/versions")
    assert "file.txt" not in api.list_repo_files("alice/versions")
    assert "file.txt" in api.list_repo_files("alice/versions", revision="v1.0")  # commits are immutable
    api.delete_tag("alice/versions", tag="v1.0")
    api.delete_branch("alice/versions", branch="feature/x")
    refs = api.list_repo_refs("alice/versions")
    assert refs.tags == [] and [b.name for b in refs.branches] == ["main"]


def test_unicode_and_space_in_file_names(hub, tmp_path):
    api = hub.api()
    api.create_repo("alice/names")
    name = "données/数据 file #1.txt"
    api.upload_file(path_or_fileobj="héllo".encode(), path_in_repo=name, repo_id="alice/names")
    assert name in api.list_repo_files("alice/names")
    path = hf_hub_download("alice/names", name, endpoint=hub.url, cache_dir=tmp_path / "c")
    assert Path(path).read_text() == "héllo"


def test_range_and_resumed_download(hub, tmp_path):
    api = hub.api()
    api.create_repo("alice/ranges")
    data = bytes(range(256)) * 64
    api.upload_file(path_or_fileobj=data, path_in_repo="blob.bin", repo_id="alice/ranges")
    url = f"{hub.url}/alice/ranges/resolve/main/blob.bin"
    r = httpx.get(url, headers={"Range": "bytes=100-199"})
    assert r.status_code == 206 and r.content == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    assert httpx.get(url, headers={"Range": "bytes=-10"}).content == data[-10:]
    assert httpx.get(url, headers={"Range": f"bytes={len(data)}-"}).status_code == 416
    # a partial download left in the cache is resumed with Range
    head = httpx.head(url)
    etag = head.headers["ETag"].strip('"')
    blobs = tmp_path / "cache" / "models--alice--ranges" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / f"{etag}.incomplete").write_bytes(data[:5000])
    path = hf_hub_download("alice/ranges", "blob.bin", endpoint=hub.url, cache_dir=tmp_path / "cache")
    assert Path(path).read_bytes() == data


def test_tree_paths_info_and_pagination(hub):
    api = hub.api()
    api.create_repo("alice/tree")
    from huggingface_hub import CommitOperationAdd

    ops = [CommitOperationAdd(f"dir/f{i}.txt", f"{i}".encode()) for i in range(7)]
    ops.append(CommitOperationAdd("dir/deep/x.txt", b"x"))
    api.create_commit("alice/tree", ops, commit_message="many files")
    # the fixture's page size is 3, so listing needs several pages through absolute Link headers
    flat = list(api.list_repo_tree("alice/tree", path_in_repo="dir"))
    assert sorted(e.path for e in flat) == ["dir/deep", *sorted(f"dir/f{i}.txt" for i in range(7))]
    deep = list(api.list_repo_tree("alice/tree", recursive=True))
    assert {e.path for e in deep} >= {"dir", "dir/deep", "dir/deep/x.txt", ".gitattributes"}
    r = httpx.get(f"{hub.url}/api/models/alice/tree/tree/main/dir")
    assert len(r.json()) == 3 and r.headers["Link"].startswith(
        f"<{hub.url}/api/models/alice/tree/tree/main/dir?"
    )
    info = api.get_paths_info("alice/tree", ["dir/f1.txt", "dir/deep", "nope"])
    assert [(type(e).__name__, e.path) for e in info] == [
        ("RepoFile", "dir/f1.txt"),
        ("RepoFolder", "dir/deep"),
    ]


def test_list_models_filter_search_author_sort(hub, tmp_path):
    api = hub.api()
    for name, tag in (("alpha-one", "fill-mask"), ("beta-two", "text-generation")):
        api.create_repo(f"acme/{name}")
        readme = f"---\npipeline_tag: {tag}\nlicense: mit\n---\n"
        api.upload_file(path_or_fileobj=readme.encode(), path_in_repo="README.md", repo_id=f"acme/{name}")
    assert [m.id for m in api.list_models(filter="fill-mask", author="acme")] == ["acme/alpha-one"]
    assert [m.id for m in api.list_models(search="beta")] == ["acme/beta-two"]
    assert {m.id for m in api.list_models(author="acme")} == {"acme/alpha-one", "acme/beta-two"}
    newest = next(iter(api.list_models(author="acme", sort="last_modified", limit=1)))
    assert newest.id == "acme/beta-two"
    # pagination: the fixture pages by 3, there are more than 3 models by now
    assert len(list(api.list_models())) > 3
    with_card = next(iter(api.list_models(search="alpha-one", cardData=True)))
    assert with_card.card_data["license"] == "mit"


def test_org_roles_and_read_tokens(hub):
    alice, bob = hub.api(), hub.api(user="bob")
    alice.create_repo("acme/private-model", private=True)
    assert bob.model_info("acme/private-model").id == "acme/private-model"  # bob reads as a member
    with pytest.raises(HfHubHTTPError) as err:
        bob.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="acme/private-model")
    assert err.value.response.status_code == 403
    with pytest.raises(HfHubHTTPError) as err:
        bob.create_repo("alice/not-yours")
    assert err.value.response.status_code == 403
    ro = hub.api(user="alice-read")
    with pytest.raises(HfHubHTTPError) as err:
        ro.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="acme/private-model")
    assert err.value.response.status_code == 403


def test_stale_parent_commit_and_races_lose_nothing(hub):
    from huggingface_hub import CommitOperationAdd

    api = hub.api()
    api.create_repo("alice/race")
    base = api.model_info("alice/race").sha
    api.create_commit(
        "alice/race", [CommitOperationAdd("a.txt", b"a")], commit_message="a", parent_commit=base
    )
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(
            "alice/race", [CommitOperationAdd("b.txt", b"b")], commit_message="b", parent_commit=base
        )
    assert err.value.response.status_code == 412
    assert "b.txt" not in api.list_repo_files("alice/race")
    errors = []

    def push(i):
        try:
            api.create_commit(
                "alice/race", [CommitOperationAdd(f"r{i}.txt", b"%d" % i)], commit_message=f"r{i}"
            )
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    files = set(api.list_repo_files("alice/race"))
    assert {f"r{i}.txt" for i in range(6)} <= files and "a.txt" in files
    assert len(api.list_repo_commits("alice/race")) == 1 + 1 + 6


def test_bad_input_is_refused_and_changes_nothing(hub):
    api = hub.api()
    api.create_repo("alice/safe")
    head = api.model_info("alice/safe").sha
    auth = {"Authorization": f"Bearer {hub.tokens['alice']}"}
    commit_url = f"{hub.url}/api/models/alice/safe/commit/main"

    def ndjson(*ops):
        import json

        lines = [{"key": "header", "value": {"summary": "evil"}}, *ops]
        return "\n".join(json.dumps(x) for x in lines).encode()

    for bad in ("../escape.txt", "/etc/passwd", "a/../../b", "a\\b", "nul\0byte", ".git/config", "a//b"):
        r = httpx.post(
            commit_url,
            content=ndjson({"key": "file", "value": {"path": bad, "content": "eA==", "encoding": "base64"}}),
            headers={**auth, "Content-Type": "application/x-ndjson"},
        )
        assert r.status_code == 400, bad
        assert "path" in r.json()["error"].lower()
    for raw in ("..%2F..%2Fetc%2Fpasswd", "%2E%2E/secret", "a/%00", "a%5C..%5Cb"):
        for url in (
            f"{hub.url}/alice/safe/resolve/main/{raw}",
            f"{hub.url}/api/models/alice/safe/tree/main/{raw}",
        ):
            r = httpx.get(url)
            assert r.status_code == 400 and r.headers["X-Error-Code"] == "BadRequest", url
    r = httpx.post(f"{hub.url}/api/models/alice/safe/paths-info/main", data={"paths": ["../../etc/passwd"]})
    assert r.status_code == 400
    r = httpx.post(commit_url, content=b"{not json", headers={**auth, "Content-Type": "application/x-ndjson"})
    assert r.status_code == 400 and "NDJSON" in r.json()["error"]
    missing = "ab" * 32
    r = httpx.post(
        commit_url,
        content=ndjson(
            {"key": "lfsFile", "value": {"path": "w.bin", "algo": "sha256", "oid": missing, "size": 3}}
        ),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 400 and missing in r.json()["error"]
    # an LFS object whose bytes do not hash to its oid is refused and not stored
    batch = httpx.post(
        f"{hub.url}/alice/safe.git/info/lfs/objects/batch",
        json={"operation": "upload", "transfers": ["basic"], "objects": [{"oid": missing, "size": 3}]},
        headers=auth,
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert httpx.put(href, content=b"abc").status_code == 400
    assert not hub.app.state.hub.store.blobs.exists(missing)
    assert httpx.put(href.replace("sig=", "sig=0"), content=b"abc").status_code == 400  # forged signature
    r = httpx.post(f"{hub.url}/api/repos/create", content=b"{oops", headers=auth)
    assert r.status_code == 400
    r = httpx.post(f"{hub.url}/alice/safe.git/info/lfs/objects/batch", content=b"[oops", headers=auth)
    assert r.status_code == 400 and "LFS batch" in r.json()["error"]
    r = httpx.post(
        f"{hub.url}/api/models/alice/safe/preupload/main",
        json={"files": [{"path": "a", "size": "x"}]},
        headers=auth,
    )
    assert r.status_code == 422 and "size" in r.json()["error"]  # a wrong type names the field
    assert api.model_info("alice/safe").sha == head
    assert api.list_repo_files("alice/safe") == [".gitattributes"]


def test_repo_settings_move_delete(hub):
    api = hub.api()
    api.create_repo("alice/movable")
    api.update_repo_settings("alice/movable", private=True)
    with pytest.raises(RepositoryNotFoundError):
        hub.api(user=None).model_info("alice/movable")
    api.move_repo("alice/movable", "acme/moved")
    assert api.model_info("acme/moved").private is True
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("alice/movable")
    # in an org, deleting (like moving and changing visibility) takes the admin role; alice is a writer
    with pytest.raises(HfHubHTTPError) as err:
        api.delete_repo("acme/moved")
    assert err.value.response.status_code == 403
    from cove.server.auth.service import add_member

    with hub.app.state.hub.store.session() as s:
        add_member(s, "acme", "alice", "admin")
    try:
        api.delete_repo("acme/moved")
    finally:
        with hub.app.state.hub.store.session() as s:
            add_member(s, "acme", "alice", "write")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("acme/moved")
    api.delete_repo("acme/moved", missing_ok=True)


def test_validate_yaml(hub):
    api = hub.api()
    r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": README, "repoType": "model"})
    assert r.status_code == 200
    bad = "---\nlicense: mit\ntags: [unclosed\n---\n"
    r = httpx.post(f"{hub.url}/api/validate-yaml", json={"content": bad, "repoType": "model"})
    assert r.status_code == 400 and "line" in r.json()["errors"][0]["message"]
    assert api.whoami()["name"] == "alice"


def test_cli_user_and_token_commands(hub, capsys, monkeypatch):
    from cove.cli.main import main

    for key, value in hub.env.items():  # the admin commands reach the server's database
        monkeypatch.setenv(key, value)

    assert main(["user", "add", "carol", "--data-dir", str(hub.data_dir)]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    assert token.startswith("cove_")
    assert hub.api(user=None, token=token).whoami()["name"] == "carol"
    assert main(["org", "add", "labs", "--data-dir", str(hub.data_dir)]) == 0
    assert (
        main(["org", "member", "add", "labs", "carol", "--role", "admin", "--data-dir", str(hub.data_dir)])
        == 0
    )
    assert (
        main(["token", "add", "carol", "--name", "ci", "--role", "read", "--data-dir", str(hub.data_dir)])
        == 0
    )
    ci_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert hub.api(user=None, token=ci_token).whoami()["orgs"][0]["name"] == "labs"
    assert main(["token", "revoke", token, "--data-dir", str(hub.data_dir)]) == 0
    with pytest.raises(HfHubHTTPError) as err:
        hub.api(user=None, token=token).whoami()
    assert err.value.response.status_code == 401
    # the token is stored hashed: its value appears nowhere in the database
    if hub.backend == "sqlite":
        assert token.encode() not in (hub.data_dir / "hub.sqlite").read_bytes()
    else:
        from sqlalchemy import text

        with hub.app.state.hub.store.engine.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(text("SELECT * FROM tokens")).all()
        assert rows and token not in repr(rows)


def test_lfs_objects_of_other_repos_cannot_be_claimed_by_hash(hub, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_DISABLE_XET", True)
    alice = hub.api(headers={"X-Cove-Upload-Mode": "lfs", "X-Cove-Client-Xet": "off"})
    alice.create_repo("alice/lfs-private", private=True)
    data = b"secret weights " * 200
    alice.upload_file(path_or_fileobj=data, path_in_repo="w.bin", repo_id="alice/lfs-private")
    oid, size = hashlib.sha256(data).hexdigest(), len(data)
    # bob knows the hash, not the bytes: he can neither commit the object nor skip sending it
    hub.api(user="bob").create_repo("bob/claim")
    auth = {"Authorization": f"Bearer {hub.tokens['bob']}"}
    lines = [
        {"key": "header", "value": {"summary": "claim"}},
        {"key": "lfsFile", "value": {"path": "stolen.bin", "algo": "sha256", "oid": oid, "size": size}},
    ]
    import json

    r = httpx.post(
        f"{hub.url}/api/models/bob/claim/commit/main",
        content="\n".join(json.dumps(x) for x in lines).encode(),
        headers={**auth, "Content-Type": "application/x-ndjson"},
    )
    assert r.status_code == 400 and "never uploaded" in r.json()["error"]
    batch = httpx.post(
        f"{hub.url}/bob/claim.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": size}]},
        headers=auth,
    ).json()
    href = batch["objects"][0]["actions"]["upload"]["href"]
    assert httpx.put(href, content=b"x" * size).status_code == 400  # wrong bytes, right length
    assert hub.api(user="bob").list_repo_files("bob/claim") == [".gitattributes"]
    # alice's own re-upload of the same content needs no transfer
    again = httpx.post(
        f"{hub.url}/alice/lfs-private.git/info/lfs/objects/batch",
        json={"operation": "upload", "objects": [{"oid": oid, "size": size}]},
        headers={"Authorization": f"Bearer {hub.tokens['alice']}"},
    ).json()
    assert "actions" not in again["objects"][0]
    # git-lfs style download through the batch API, for a reader of the repo
    down = httpx.post(
        f"{hub.url}/alice/lfs-private.git/info/lfs/objects/batch",
        json={"operation": "download", "objects": [{"oid": oid, "size": size}]},
        headers={"Authorization": f"Bearer {hub.tokens['alice']}"},
    ).json()
    assert httpx.get(down["objects"][0]["actions"]["download"]["href"]).content == data


def test_every_error_has_a_code_and_per_file_history(hub):
    api = hub.api()
    api.create_repo("alice/hist")
    c1 = api.upload_file(path_or_fileobj=b"1", path_in_repo="a.txt", repo_id="alice/hist").oid
    api.upload_file(path_or_fileobj=b"b", path_in_repo="b.txt", repo_id="alice/hist")
    c3 = api.upload_file(path_or_fileobj=b"2", path_in_repo="a.txt", repo_id="alice/hist").oid
    r = httpx.get(f"{hub.url}/api/models/alice/hist/commits/main/a.txt")
    assert [c["id"] for c in r.json()] == [c3, c1]
    auth = {"Authorization": f"Bearer {hub.tokens['alice']}"}
    cases = [
        (httpx.get(f"{hub.url}/api/models/alice/nope"), 404, "RepoNotFound"),
        (httpx.get(f"{hub.url}/api/models/alice/hist/revision/nope"), 404, "RevisionNotFound"),
        (httpx.get(f"{hub.url}/alice/hist/resolve/main/nope.txt"), 404, "EntryNotFound"),
        (
            httpx.get(f"{hub.url}/api/whoami-v2", headers={"Authorization": "Bearer x"}),
            401,
            "InvalidCredentials",
        ),
        (httpx.post(f"{hub.url}/api/repos/create", json={"name": "hist"}, headers=auth), 409, "Conflict"),
        (httpx.get(f"{hub.url}/api/models?sort=bogus"), 400, "BadRequest"),
        (httpx.get(f"{hub.url}/no/such/route/at/all"), 404, "NotFound"),
    ]
    for response, status, code in cases:
        assert (response.status_code, response.headers.get("X-Error-Code")) == (status, code), response.url
        assert response.json()["error"]
    datasets = hub.api(user=None).list_datasets(author="alice")
    assert all(d.id.startswith("alice/") for d in datasets)


def test_tokens_never_reach_the_logs(hub, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    token = hub.tokens["alice"]
    api = hub.api()
    api.create_repo("alice/logged", exist_ok=True)
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="alice/logged")
    httpx.get(f"{hub.url}/api/whoami-v2", headers={"Authorization": "Bearer cove_wrong-token-value"})
    assert caplog.records  # something was logged at DEBUG, so the check below means something
    assert token not in caplog.text and "cove_wrong-token-value" not in caplog.text
