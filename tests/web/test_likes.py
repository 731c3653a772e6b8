"""Likes: the page's like button (a form), the Hub's JSON API as huggingface_hub calls it against a live
hub, and repos.likes kept exact under concurrency."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import httpx
import pytest

from tests.server.conftest import LiveHub, postgres, start_hub

__all__ = ["postgres"]  # the session's PostgreSQL server (tests/server/conftest.py), for the store fixture


def _likes(web, repo_id, repo_type="model"):  # type: ignore[no-untyped-def]
    """(repos.likes, the number of like rows) of a repo."""
    from cove.store import LikeRow

    with web.store.session() as s:
        row = web.store.get_repo(s, repo_type, repo_id)
        return row.likes, s.query(LikeRow).filter(LikeRow.repo_id == row.id).count()


# --- the like button ------------------------------------------------------------------------------


def test_the_like_button_toggles_and_goes_back(web):
    web.password("alice")
    web.repo("bob/model")
    web.repo("bob/data", repo_type="dataset")
    web.sign_in("alice")
    token = web.csrf("/settings/tokens")
    r = web.post("/bob/model/like", {"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/bob/model"
    assert _likes(web, "bob/model") == (1, 1)
    r = web.post("/bob/model/like", {"csrf_token": token, "next": "/bob/model/tree/main"})
    assert r.status_code == 303 and r.headers["location"] == "/bob/model/tree/main"
    assert _likes(web, "bob/model") == (0, 0)
    r = web.post("/datasets/bob/data/like", {"csrf_token": token, "next": "https://evil.example/"})
    assert r.status_code == 303 and r.headers["location"] == "/datasets/bob/data"
    assert _likes(web, "bob/data", "dataset") == (1, 1)
    assert _likes(web, "bob/model") == (0, 0)


def test_the_like_button_refuses_forged_anonymous_and_hidden(web):
    web.password("alice")
    web.repo("bob/model")
    web.repo("bob/secret", private=True)
    web.sign_in("alice")
    token = web.csrf("/settings/tokens")
    for data in ({}, {"csrf_token": "0" * 64}):
        r = web.post("/bob/model/like", data)
        assert r.status_code == 403 and r.headers["x-error-code"] == "CsrfTokenInvalid"
    assert web.post("/bob/secret/like", {"csrf_token": token}).status_code == 404
    assert web.post("/bob/nothing/like", {"csrf_token": token}).status_code == 404
    web.client.cookies.clear()
    r = web.post("/bob/model/like", {"csrf_token": token}, headers={"referer": "http://testserver/bob/model"})
    assert r.status_code == 401 and 'href="/login?next=/bob/model"' in r.text
    assert _likes(web, "bob/model") == (0, 0)


def test_deleting_a_repo_drops_its_likes(web):
    from cove.server.auth.service import Principal
    from cove.server.repos import likes
    from cove.store import LikeRow

    web.user("alice")
    web.user("carol")
    web.repo("bob/model")
    web.repo("bob/kept")
    with web.store.session() as s:
        for user in ("alice", "carol"):
            for repo_id in ("bob/model", "bob/kept"):
                likes.like(
                    s, Principal(name=user, token_role="write"), web.store.get_repo(s, "model", repo_id)
                )
        web.store.delete_repo(s, web.store.get_repo(s, "model", "bob/model"))
        assert s.query(LikeRow).count() == 2
    assert _likes(web, "bob/kept") == (2, 2)
    web.repo("bob/model")  # a new repo of the old name starts from nothing
    assert _likes(web, "bob/model") == (0, 0)


# --- concurrency ----------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path):  # type: ignore[no-untyped-def]
    """A hub store on SQLite, or on a fresh PostgreSQL database (where writers really run in parallel)."""
    from cove.store import RepoStore, make_engine, upgrade_schema

    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres").new_database()
        engine = make_engine(url)
        upgrade_schema(engine)
        engine.dispose()
    store = RepoStore(tmp_path / "hub", database_url=url)
    if url is None:
        store.create_tables()
    yield store
    store.engine.dispose()


def _storm(store, calls) -> None:  # type: ignore[no-untyped-def]
    """Run each call(session) in its own thread and session, all released at once."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call) -> None:  # type: ignore[no-untyped-def]
        with store.session() as s:
            barrier.wait()
            try:
                call(s)
            except BaseException as exc:  # reported below
                errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors


def test_the_count_stays_exact_under_concurrent_likes_and_unlikes(store):
    from cove.server.auth.service import Principal, create_account
    from cove.server.repos import likes
    from cove.store import LikeRow

    users = [f"user{i}" for i in range(8)]
    with store.session() as s:
        for user in [*users, "bob"]:
            create_account(s, user, "user")
        store.create_repo(s, "model", "bob/model", author="bob")

    def counts():  # type: ignore[no-untyped-def]
        with store.session() as s:
            row = store.get_repo(s, "model", "bob/model")
            return row.likes, s.query(LikeRow).filter(LikeRow.repo_id == row.id).count()

    def act(user, what):  # type: ignore[no-untyped-def]
        def call(s):  # type: ignore[no-untyped-def]
            repo = store.get_repo(s, "model", "bob/model")
            getattr(likes, what)(s, Principal(name=user, token_role="write"), repo)

        return call

    _storm(store, [act(u, "like") for u in users])
    assert counts() == (8, 8)
    _storm(store, [act("user0", "like") for _ in range(6)])  # one user, many tabs: still one like
    assert counts() == (8, 8)
    unlikes = [act(u, "unlike") for u in users[:4]]
    _storm(store, unlikes + unlikes + [act(u, "toggle") for u in users[4:]])
    assert counts() == (0, 0)


# --- the JSON API, as huggingface_hub calls it -----------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    live, server, thread = start_hub(tmp_path_factory.mktemp("likes-hub"), list_page_size=2)
    yield live
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


@pytest.fixture(autouse=True)
def _online(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)  # the hub is on 127.0.0.1


def _like(live: LiveHub, repo: str, user: str | None = "alice", kind: str = "models") -> httpx.Response:
    headers = {"authorization": f"Bearer {live.tokens[user]}"} if user else {}
    return httpx.post(f"{live.url}/api/{kind}/{repo}/like", headers=headers)


@pytest.mark.server
def test_huggingface_hub_lists_and_unlikes_what_the_like_api_recorded(live):
    from huggingface_hub.errors import RepositoryNotFoundError

    bob, alice = live.api("bob"), live.api("alice")
    for name in ("one", "two", "three"):
        bob.create_repo(f"bob/{name}", exist_ok=True)
    bob.create_repo("bob/secret", private=True, exist_ok=True)
    bob.create_repo("bob/table", repo_type="dataset", exist_ok=True)
    for repo in ("bob/one", "bob/two", "bob/three"):
        r = _like(live, repo)
        assert r.status_code == 200 and r.json()["liked"] is True
    assert _like(live, "bob/one").json() == {"liked": True, "likes": 1}  # liking twice counts once
    assert _like(live, "bob/table", kind="datasets").status_code == 200
    assert _like(live, "bob/secret", user="bob").status_code == 200

    liked = alice.list_liked_repos("alice")  # three pages of two: Link headers followed
    assert liked.total == 4 and sorted(liked.models) == ["bob/one", "bob/three", "bob/two"]
    assert liked.datasets == ["bob/table"]
    assert [u.username for u in alice.list_repo_likers("bob/one")] == ["alice"]
    # bob's private like is his to see
    assert live.api("bob").list_liked_repos("bob").models == ["bob/secret"]
    assert live.api(None).list_liked_repos("bob").total == 0
    assert alice.list_liked_repos().user == "alice"  # the caller, from whoami

    alice.unlike("bob/two")
    alice.unlike("bob/two")  # unliking what is not liked is fine, as on the Hub
    alice.unlike("bob/table", repo_type="dataset")
    assert sorted(alice.list_liked_repos("alice").models) == ["bob/one", "bob/three"]
    with pytest.raises(RepositoryNotFoundError):
        alice.unlike("bob/secret")  # private: does not exist for alice
    with pytest.raises(RepositoryNotFoundError):
        list(alice.list_repo_likers("bob/secret"))

    store = live.app.state.hub.store  # type: ignore[attr-defined]
    with store.session() as s:
        counts = {
            r: store.get_repo(s, "model", r).likes for r in ("bob/one", "bob/two", "bob/three", "bob/secret")
        }
    assert counts == {"bob/one": 1, "bob/two": 0, "bob/three": 1, "bob/secret": 1}


@pytest.mark.server
def test_the_like_api_refuses_anonymous_callers_read_tokens_and_unknown_names(live):
    live.api("bob").create_repo("bob/refused", exist_ok=True)
    r = _like(live, "bob/refused", user=None)
    assert r.status_code == 401 and r.headers["x-error-code"] == "InvalidCredentials"
    r = _like(live, "bob/refused", user="alice-read")
    assert r.status_code == 403 and "write token" in r.json()["error"]
    assert _like(live, "bob/nothing").status_code == 404
    r = httpx.get(f"{live.url}/api/users/nobody/likes")
    assert r.status_code == 404
    r = httpx.get(f"{live.url}/api/users/acme/likes")  # organisations do not like
    assert r.status_code == 404
    store = live.app.state.hub.store  # type: ignore[attr-defined]
    with store.session() as s:
        assert store.get_repo(s, "model", "bob/refused").likes == 0
