"""The embedded hub store on its own: immutability, compare-and-swap under real concurrency, paths, cards."""

from __future__ import annotations

import threading

import pytest

from cove.errors import (
    BlobMismatchError,
    CommitConflictError,
    EntryNotFoundError,
    HubRequestError,
    RepoExistsError,
    RevisionNotFoundError,
)
from cove.store import CommitOp, RepoStore, check_path, git_blob_oid
from cove.store import repos as repos_mod


@pytest.fixture
def store(tmp_path):
    st = RepoStore(tmp_path)
    st.create_tables()
    return st


def _add(store, path, data):
    return CommitOp("add", path, store.store_regular(data, path))


def test_git_blob_oid_matches_git():
    # `printf 'hello\\n' | git hash-object --stdin`
    assert git_blob_oid(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_commits_are_immutable_and_history_per_file(store):
    with store.session() as s:
        repo = store.create_repo(s, "model", "u/r", author="u")
        c1 = store.commit(s, repo, [_add(store, "a.txt", b"1")], title="one", author="u")
        c2 = store.commit(
            s, repo, [_add(store, "a.txt", b"2"), _add(store, "b.txt", b"b")], title="two", author="u"
        )
        c3 = store.commit(s, repo, [CommitOp("delete", "b.txt")], title="three", author="u")
        assert store.blobs.read(store.tree(s, c1)["a.txt"].sha256) == b"1"
        assert set(store.tree(s, c2)) == {".gitattributes", "a.txt", "b.txt"}
        assert "b.txt" not in store.tree(s, c3)
        assert [c.id for c in store.history(s, repo, "main", "a.txt")] == [c2, c1]
        assert [c.id for c in store.history(s, repo, "main", "b.txt")] == [c3, c2]
        with pytest.raises(EntryNotFoundError):
            store.commit(s, repo, [CommitOp("delete", "nope")], title="x", author="u")
        with pytest.raises(RevisionNotFoundError):
            store.resolve(s, repo, "0" * 40)
        with pytest.raises(RepoExistsError):
            store.create_repo(s, "model", "u/r", author="u")
        with pytest.raises(CommitConflictError):
            store.commit(s, repo, [_add(store, "c", b"c")], title="stale", author="u", parent_commit=c1)
        assert store.resolve(s, repo, "main") == c3


def test_racing_writers_without_the_process_lock_lose_nothing(tmp_path, monkeypatch):
    """Separate engines (as separate processes would have) and no in-process lock: only the CAS protects."""
    monkeypatch.setattr(repos_mod, "_repo_lock", lambda key: threading.Lock())
    first = RepoStore(tmp_path)
    first.create_tables()
    with first.session() as s:
        first.create_repo(s, "model", "u/race", author="u")
    errors = []

    def writer(i):
        st = RepoStore(tmp_path)
        try:
            with st.session() as s:
                repo = st.get_repo(s, "model", "u/race")
                for j in range(3):
                    st.commit(s, repo, [_add(st, f"w{i}-{j}.txt", b"x")], title=f"w{i}-{j}", author="u")
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            st.engine.dispose()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with first.session() as s:
        repo = first.get_repo(s, "model", "u/race")
        tree = first.tree(s, first.resolve(s, repo, "main"))
        assert {f"w{i}-{j}.txt" for i in range(4) for j in range(3)} <= set(tree)
        assert len(first.history(s, repo, "main")) == 1 + 12


@pytest.mark.parametrize(
    "bad", ["", "../x", "a/../b", "/abs", "a\\b", "a\0b", "./a", "a//b", ".git/HEAD", "C:x"]
)
def test_paths_that_could_escape_are_refused(bad):
    with pytest.raises(HubRequestError):
        check_path(bad)


def test_blob_store_refuses_a_wrong_sha256(store):
    import io

    with pytest.raises(BlobMismatchError):
        store.blobs.put_stream(io.BytesIO(b"abc"), expected_sha256="0" * 64)
    assert not store.blobs.exists("0" * 64)
    assert list(store.blobs.root.glob(".incoming-*")) == []


def test_card_metadata_refreshes_on_commit(store):
    import json

    with store.session() as s:
        repo = store.create_repo(s, "model", "u/card", author="u")
        readme = b"---\nlicense: mit\nmodel-index:\n- name: m\n  results: []\nbase_model: x/y\n---\n# m\n"
        store.commit(s, repo, [_add(store, "README.md", readme)], title="card", author="u")
        card = json.loads(repo.card_json)
        assert (
            card["license"] == "mit" and card["base_model"] == "x/y" and card["model-index"][0]["name"] == "m"
        )


def test_yaml_alias_bombs_are_refused():
    from cove.store import card_from_readme

    bomb = "---\na: &a [x, x, x, x, x, x, x, x, x, x]\n"
    for i, name in enumerate("bcdefgh"):
        prev = "a" if i == 0 else "bcdefgh"[i - 1]
        bomb += f"{name}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
    bomb += "---\n"
    with pytest.raises(HubRequestError, match="too large"):
        card_from_readme(bomb)
    assert card_from_readme("---\nx: &a [1]\ny: *a\n---\n") == {"x": [1], "y": [1]}  # small aliases are fine
