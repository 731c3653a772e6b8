"""What the hub refuses at the door, over HTTP as an attacker sends it: files in a '.git' folder at any depth,
names with control characters, card text that could not be listed; and that listing and downloading keep
working for everyone afterwards."""

from __future__ import annotations

import base64
import json

import httpx
import pytest

pytestmark = pytest.mark.server


def _ndjson(*ops: dict) -> bytes:  # type: ignore[type-arg]
    lines = [{"key": "header", "value": {"summary": "attempt"}}, *ops]
    return "\n".join(json.dumps(x) for x in lines).encode()


def _file(path: str, data: bytes) -> dict:  # type: ignore[type-arg]
    return {
        "key": "file",
        "value": {"path": path, "content": base64.b64encode(data).decode(), "encoding": "base64"},
    }


@pytest.fixture(scope="module")
def door(hub):  # type: ignore[no-untyped-def]
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:  # the suite is offline; this server is on 127.0.0.1
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        api = hub.api()
        api.create_repo("alice/door", exist_ok=True)
        api.upload_file(path_or_fileobj=b"fine", path_in_repo="ok.txt", repo_id="alice/door")
    return hub


def _commit(hub, *ops):  # type: ignore[no-untyped-def]
    return httpx.post(
        f"{hub.url}/api/models/alice/door/commit/main",
        content=_ndjson(*ops),
        headers={"Authorization": f"Bearer {hub.tokens['alice']}", "Content-Type": "application/x-ndjson"},
        timeout=60,
    )


@pytest.mark.parametrize(
    "path",
    [
        "src/.git/config",  # core.fsmonitor here ran a command when the victim ran `git status`
        "a/b/.git/hooks/post-checkout",
        ".GIT/config",
        "x/.Git/HEAD",
        "x/.git./config",
        "name\nwith newline.txt",
        "tab\tname.txt",
        "esc\x1b[31m.txt",
    ],
)
def test_paths_git_would_run_or_no_disk_can_hold_are_refused(door, path):
    head = door.api().model_info("alice/door").sha
    r = _commit(door, _file(path, b"[core]\n\tfsmonitor = touch /tmp/pwned\n"))
    assert r.status_code == 400, (path, r.text)
    assert "path" in r.json()["error"].lower()
    assert door.api().model_info("alice/door").sha == head


def test_a_card_with_a_control_character_is_refused_and_listing_still_works(door, tmp_path):
    head = door.api().model_info("alice/door").sha
    r = _commit(door, _file("README.md", b'---\ntags:\n- "bell\\a"\n---\n# card\n'))
    assert r.status_code == 400 and "front matter" in r.json()["error"], r.text
    assert door.api().model_info("alice/door").sha == head
    # the attack of the issue: a lone surrogate from a YAML escape. libyaml refuses the escape itself, so the
    # README is kept as a file without card data; either way nothing unsendable is stored
    r = _commit(door, _file("README.md", b'---\ntags:\n- "\\udc80"\n---\n# card\n'))
    assert r.status_code in (200, 400), r.text
    anonymous = door.api(user=None)
    ids = [m.id for m in anonymous.list_models()]
    assert "alice/door" in ids
    info = anonymous.model_info("alice/door")
    assert "\udc80" not in json.dumps(info.card_data.to_dict() if info.card_data else {})
    folder = anonymous.snapshot_download("alice/door", cache_dir=tmp_path)
    assert (tmp_path / folder / "ok.txt").read_bytes() == b"fine"


def test_a_file_under_a_file_is_refused(door):
    head = door.api().model_info("alice/door").sha
    r = _commit(door, _file("ok.txt/inner.txt", b"x"))
    assert r.status_code == 400 and "is a file" in r.json()["error"], r.text
    r = _commit(door, {"key": "copyFile", "value": {"path": "elsewhere.txt"}})
    assert 400 <= r.status_code < 500 and r.status_code != 404, r.text
    assert door.api().model_info("alice/door").sha == head


def test_a_path_stored_before_the_door_checked_it_breaks_nothing(door):
    """A tree written by an older Cove may hold a name with a lone surrogate: the repo's info and tree, and
    the listing, still answer (the name replaced), for every caller."""
    from sqlalchemy import update

    from cove.store import CommitRow, FileEntry, RefRow

    store = door.app.state.hub.store  # type: ignore[attr-defined]
    with store.session() as s:
        repo = store.create_repo(s, "model", "alice/legacy", author="alice")
        head = store.resolve(s, repo, "main")
        tree = dict(store.tree(s, head))
        ok = store.store_regular(b"fine", "ok.txt")
        bad = FileEntry("bad\udc80.txt", ok.oid, ok.size, ok.sha256, False)
        tree.update({"ok.txt": ok, bad.path: bad})
        tree_sha = store._put_tree(tree)
        commit_id = "f" * 40
        s.add(
            CommitRow(
                id=commit_id, repo_id=repo.id, parent_id=head, tree_sha256=tree_sha, title="old", author="a"
            )
        )
        s.execute(
            update(RefRow).where(RefRow.repo_id == repo.id, RefRow.name == "main").values(commit_id=commit_id)
        )
        s.commit()
    for url in (
        f"{door.url}/api/models/alice/legacy",
        f"{door.url}/api/models/alice/legacy/tree/main",
        f"{door.url}/api/models/alice/legacy/revision/main?blobs=true",
        f"{door.url}/api/models",
    ):
        r = httpx.get(url)
        assert r.status_code == 200, (url, r.text)
    files = door.api(user=None).list_repo_files("alice/legacy")
    assert "ok.txt" in files and "bad\ufffd.txt" in files
    assert door.api(user=None).model_info("alice/legacy").sha == commit_id
