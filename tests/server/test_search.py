"""The list/search API (GET /api/models|datasets|spaces) against a live hub on SQLite and on PostgreSQL + S3,
driven by the real huggingface_hub client: filters, sorts, keyset pagination, privacy, rows that older
versions stored badly, and proof that the query runs in the database."""

from __future__ import annotations

import datetime as dt
import json
import logging

import httpx
import pytest
from sqlalchemy import event, insert, select, text

pytestmark = pytest.mark.server

T0 = dt.datetime(2025, 1, 1)


def _store(hub):  # type: ignore[no-untyped-def]
    return hub.app.state.hub.store


def _insert(hub, namespace: str, rows: list[dict]) -> list[int]:  # type: ignore[no-untyped-def]
    """Repos straight into the database (as a migration or an older Cove left them), with their tags and
    search terms."""
    from cove.store import RepoRow
    from cove.store.search import id_terms, stored_card, sync_tags, sync_terms

    with _store(hub).session() as s:
        objs = []
        for row in rows:
            values = {"type": "model", "namespace": namespace, "card_json": "{}", "downloads": 0, **row}
            values.setdefault("created_at", T0)
            values.setdefault("updated_at", values["created_at"])
            objs.append(RepoRow(**values))
        s.add_all(objs)
        s.flush()
        for obj in objs:
            sync_tags(s, obj.id, obj.type, stored_card(obj.card_json))
            sync_terms(s, obj.id, "id", id_terms(obj.repo_id))
        s.commit()
        return [o.id for o in objs]


def _walk(hub, params: dict, *, user: str | None = None, kind: str = "models") -> tuple[list[str], int]:  # type: ignore[no-untyped-def]
    """Every id the listing yields, following the Link headers by hand; and the number of pages."""
    headers = {"Authorization": f"Bearer {hub.tokens[user]}"} if user else {}
    r = httpx.get(f"{hub.url}/api/{kind}", params=params, headers=headers)
    ids, pages = [], 0
    while True:
        assert r.status_code == 200, r.text
        ids += [item["id"] for item in r.json()]
        pages += 1
        nxt = r.links.get("next", {}).get("url")
        if nxt is None:
            return ids, pages
        r = httpx.get(nxt, headers=headers)


def _readme(**card) -> bytes:  # type: ignore[no-untyped-def]
    return ("---\n" + json.dumps(card) + "\n---\n# card\n").encode()


def test_filters_match_what_the_card_yields(hub):
    api = hub.api()
    cards = {
        "alice/flt-bert": {
            "pipeline_tag": "fill-mask",
            "library_name": "transformers",
            "license": "mit",
            "language": ["en", "fr"],
            "datasets": ["wiki"],
            "tags": ["Custom-Tag"],
        },
        "alice/flt-gpt": {
            "pipeline_tag": "text-generation",
            "library_name": "pytorch",
            "license": "apache-2.0",
        },
        "acme/flt-plain": None,
    }
    for repo_id, card in cards.items():
        api.create_repo(repo_id)
        if card is not None:
            api.upload_file(path_or_fileobj=_readme(**card), path_in_repo="README.md", repo_id=repo_id)

    def ids(**kwargs) -> list[str]:  # type: ignore[no-untyped-def]
        return sorted(m.id for m in api.list_models(search="flt-", **kwargs))

    assert ids() == ["acme/flt-plain", "alice/flt-bert", "alice/flt-gpt"]
    assert ids(filter="fill-mask") == ["alice/flt-bert"]
    assert ids(filter=["fill-mask", "license:mit"]) == ["alice/flt-bert"]
    assert ids(filter=["fill-mask", "license:apache-2.0"]) == []  # every filter must match
    assert ids(filter="fill-mask,license:mit") == ["alice/flt-bert"]  # comma-separated
    assert ids(filter="custom-tag") == ["alice/flt-bert"]  # case-insensitive
    assert ids(filter="transformers") == ["alice/flt-bert"]  # library_name
    assert ids(pipeline_tag="text-generation") == ["alice/flt-gpt"]
    assert ids(trained_dataset="wiki") == ["alice/flt-bert"]
    assert ids(author="ACME") == ["acme/flt-plain"]
    assert ids(gated=False) == ["acme/flt-plain", "alice/flt-bert", "alice/flt-gpt"]
    assert ids(gated=True) == []  # Cove has no gated repos
    assert [m.id for m in api.list_models(search="ALICE/FLT-G")] == ["alice/flt-gpt"]  # of the repo id
    assert [m.id for m in api.list_models(search="flt_")] == []  # LIKE wildcards are literal
    # the dedicated parameters the Hub also takes, and 0.x's search list (model_name + search)
    for params, expected in [
        ({"library": "pytorch"}, ["alice/flt-gpt"]),
        ({"language": "fr"}, ["alice/flt-bert"]),
        ({"license": "mit"}, ["alice/flt-bert"]),
        ({"dataset": "wiki"}, ["alice/flt-bert"]),
        ({"search": ["flt-", "gpt"]}, ["alice/flt-gpt"]),
    ]:
        assert sorted(_walk(hub, {"search": "flt-", **params})[0]) == expected, params
    # the JSON is what it was before the query moved into the database
    (item,) = httpx.get(f"{hub.url}/api/models", params={"search": "flt-bert"}).json()
    assert set(item) == {
        "_id",
        "id",
        "author",
        "private",
        "gated",
        "disabled",
        "downloads",
        "likes",
        "tags",
        "lastModified",
        "createdAt",
        "modelId",
        "pipeline_tag",
        "library_name",
    }
    assert item["tags"] == [
        "Custom-Tag",
        "transformers",
        "fill-mask",
        "dataset:wiki",
        "en",
        "fr",
        "license:mit",
    ]
    assert (item["author"], item["modelId"], item["private"], item["likes"]) == (
        "alice",
        "alice/flt-bert",
        False,
        0,
    )
    full = next(iter(api.list_models(search="flt-bert", full=True)))
    assert full.sha == api.model_info("alice/flt-bert").sha and full.card_data["license"] == "mit"
    assert sorted(s.rfilename for s in full.siblings) == [".gitattributes", "README.md"]
    config = {"model_type": "bert", "architectures": ["BertForMaskedLM"], "hidden_size": 8}
    api.upload_file(
        path_or_fileobj=json.dumps(config).encode(), path_in_repo="config.json", repo_id="alice/flt-bert"
    )
    with_config = {m.id: m.config for m in api.list_models(search="flt-", fetch_config=True)}
    assert with_config == {
        "alice/flt-bert": {
            "model_type": "bert",
            "architectures": ["BertForMaskedLM"],
        },  # as model_info has it
        "alice/flt-gpt": None,
        "acme/flt-plain": None,
    }


def test_tags_follow_the_default_branch_card_moves_and_deletes(hub):
    from cove.store import RepoTagRow

    api = hub.api()
    api.create_repo("alice/sync-one")
    api.upload_file(
        path_or_fileobj=_readme(pipeline_tag="fill-mask"), path_in_repo="README.md", repo_id="alice/sync-one"
    )
    assert [m.id for m in api.list_models(filter="fill-mask", search="sync-")] == ["alice/sync-one"]
    # a card on another branch does not change what the repo is listed by
    api.create_branch("alice/sync-one", branch="dev")
    api.upload_file(
        path_or_fileobj=_readme(pipeline_tag="text-generation"),
        path_in_repo="README.md",
        repo_id="alice/sync-one",
        revision="dev",
    )
    assert [m.id for m in api.list_models(filter="fill-mask", search="sync-")] == ["alice/sync-one"]
    assert list(api.list_models(filter="text-generation", search="sync-")) == []
    # a new card on main replaces the tags; a removed README removes them
    api.upload_file(
        path_or_fileobj=_readme(pipeline_tag="summarization"),
        path_in_repo="README.md",
        repo_id="alice/sync-one",
    )
    assert [m.id for m in api.list_models(filter="summarization", search="sync-")] == ["alice/sync-one"]
    assert list(api.list_models(filter="fill-mask", search="sync-")) == []
    api.delete_file("README.md", repo_id="alice/sync-one")
    assert list(api.list_models(filter="summarization", search="sync-")) == []
    # a moved repo keeps its tags; a deleted one leaves none behind
    api.upload_file(
        path_or_fileobj=_readme(tags=["kept"]), path_in_repo="README.md", repo_id="alice/sync-one"
    )
    api.move_repo("alice/sync-one", "acme/Sync-Two")
    assert [m.id for m in api.list_models(filter="kept", search="sync-")] == ["acme/Sync-Two"]
    assert [m.id for m in api.list_models(author="acme", search="sync-two")] == ["acme/Sync-Two"]
    assert list(api.list_models(author="alice", search="sync-")) == []
    with _store(hub).session() as s:
        row = _store(hub).get_repo(s, "model", "acme/Sync-Two")
        pk, lower_id = row.id, row.lower_id
    assert lower_id == "acme/sync-two"  # the id order follows the move
    with _store(hub).session() as s:  # alice may not delete in acme (write role): the store does
        _store(hub).delete_repo(s, _store(hub).get_repo(s, "model", "acme/Sync-Two"))
    with _store(hub).session() as s:
        assert s.scalars(select(RepoTagRow).where(RepoTagRow.repo_id == pk)).all() == []


def test_datasets_and_spaces_filters(hub):
    api = hub.api()
    api.create_repo("alice/dsf-reviews", repo_type="dataset")
    card = _readme(
        language=["en"], license="mit", task_categories=["text-classification"], size_categories="1K<n<10K"
    )
    api.upload_file(
        path_or_fileobj=card, path_in_repo="README.md", repo_id="alice/dsf-reviews", repo_type="dataset"
    )
    api.create_repo("alice/dsf-other", repo_type="dataset")

    def datasets(**kwargs) -> list[str]:  # type: ignore[no-untyped-def]
        return sorted(d.id for d in api.list_datasets(search="dsf-", **kwargs))

    assert datasets() == ["alice/dsf-other", "alice/dsf-reviews"]
    assert datasets(language="en") == ["alice/dsf-reviews"]  # sent as filter=language:en
    assert datasets(task_categories="text-classification") == ["alice/dsf-reviews"]
    assert datasets(size_categories="1K<n<10K") == ["alice/dsf-reviews"]
    assert datasets(filter="license:mit") == ["alice/dsf-reviews"]
    assert datasets(language="de") == []
    assert datasets(dataset_name="reviews") == ["alice/dsf-reviews"]  # a second search term

    for name, links in (
        ("spf-demo", {"models": ["alice/spf-model"], "datasets": ["alice/dsf-reviews"]}),
        ("spf-bare", {}),
    ):
        api.create_repo(f"alice/{name}", repo_type="space", space_sdk="gradio")
        card = _readme(sdk="gradio", tags=["demo"], **links)
        api.upload_file(
            path_or_fileobj=card, path_in_repo="README.md", repo_id=f"alice/{name}", repo_type="space"
        )

    def spaces(**kwargs) -> list[str]:  # type: ignore[no-untyped-def]
        return sorted(sp.id for sp in api.list_spaces(search="spf-", **kwargs))

    assert spaces() == ["alice/spf-bare", "alice/spf-demo"]
    assert spaces(filter="demo") == ["alice/spf-bare", "alice/spf-demo"]
    assert spaces(models="alice/spf-model") == ["alice/spf-demo"]
    assert spaces(datasets="alice/dsf-reviews") == ["alice/spf-demo"]
    assert spaces(datasets="alice/nope") == []
    assert spaces(linked=True) == ["alice/spf-demo"]
    assert {sp.sdk for sp in api.list_spaces(search="spf-")} == {"gradio"}


def test_every_sort_and_direction_across_pages(hub):
    from huggingface_hub.errors import HfHubHTTPError

    specs = [  # name, downloads, created (days after T0), updated: ties on purpose
        ("r-a", 5, 1, 9),
        ("R-b", 7, 2, 8),
        ("r-c", 5, 3, 7),
        ("r-d", 0, 3, 7),
        ("r-e", 7, 5, 1),
        ("r-f", 5, 6, 3),
        ("r-g", 1, 7, 3),
    ]
    pks = _insert(
        hub,
        "sorted",
        [
            {
                "name": name,
                "downloads": downloads,
                "created_at": T0 + dt.timedelta(days=created),
                "updated_at": T0 + dt.timedelta(days=updated),
            }
            for name, downloads, created, updated in specs
        ],
    )
    rows = [(f"sorted/{name}", d, c, u, pk) for (name, d, c, u), pk in zip(specs, pks)]

    def expected(index: int | None, descending: bool = True) -> list[str]:
        def key(r):  # type: ignore[no-untyped-def]
            return (r[index] if index is not None else 0, r[4])

        return [r[0] for r in sorted(rows, key=key, reverse=descending)]

    api = hub.api(user=None)
    listed = {
        s: [m.id for m in api.list_models(author="sorted", sort=s)]
        for s in ("downloads", "trending_score", "last_modified", "created_at", "likes")
    }
    assert listed["downloads"] == expected(1) == listed["trending_score"]
    assert listed["created_at"] == expected(2)
    assert listed["last_modified"] == expected(3)
    assert listed["likes"] == expected(None)  # all 0: the primary key orders
    ascending, pages = _walk(hub, {"author": "sorted", "sort": "downloads", "direction": "1"})
    assert ascending == expected(1, descending=False) and pages == 3  # the fixture pages by 3
    by_id = sorted((r[0] for r in rows), key=str.lower)
    assert _walk(hub, {"author": "sorted"})[0] == by_id  # no sort: by id, ascending
    assert _walk(hub, {"author": "sorted", "sort": "id"})[0] == by_id[::-1]
    assert _walk(hub, {"author": "sorted", "sort": "id", "direction": "1"})[0] == by_id
    newest = next(iter(api.list_models(author="sorted", sort="last_modified", limit=1)))
    assert newest.id == "sorted/r-a"
    assert [m.id for m in api.list_models(author="sorted", sort="downloads", limit=4)] == expected(1)[:4]

    r = httpx.get(f"{hub.url}/api/models", params={"sort": "stars"})
    assert (r.status_code, r.headers["X-Error-Code"]) == (400, "BadRequest")
    assert "lastModified, createdAt, downloads, likes, trendingScore, id" in r.json()["error"]
    assert httpx.get(f"{hub.url}/api/models", params={"direction": "up"}).status_code == 400
    assert httpx.get(f"{hub.url}/api/models", params={"limit": "0"}).status_code == 400
    assert httpx.get(f"{hub.url}/api/models", params={"limit": "ten"}).status_code == 400
    with pytest.raises(HfHubHTTPError):
        list(api.list_models(sort="stars"))  # type: ignore[arg-type]


def test_pages_with_ties_never_repeat_or_skip(hub):
    same = {"downloads": 3, "created_at": T0, "updated_at": T0}
    pks = _insert(hub, "ties", [{"name": f"t{i:02d}", **same} for i in range(10)])
    by_pk = {pk: f"ties/t{i:02d}" for i, pk in enumerate(pks)}
    newest_first = [by_pk[pk] for pk in sorted(pks, reverse=True)]
    for sort in ("downloads", "lastModified", "createdAt", "likes", "trendingScore"):
        ids, pages = _walk(hub, {"author": "ties", "sort": sort})
        assert ids == newest_first and pages == 4, sort
        assert _walk(hub, {"author": "ties", "sort": sort, "direction": "1"})[0] == newest_first[::-1]
    # a limit larger than the server's page size still pages by the page size
    assert _walk(hub, {"author": "ties", "limit": "50"})[1] == 4
    assert _walk(hub, {"author": "ties", "limit": "2"}) == (sorted(newest_first), 5)

    # keyset pages: a repo that lands before the cursor mid-walk shifts nothing (offsets would repeat one)
    r = httpx.get(f"{hub.url}/api/models", params={"author": "ties", "sort": "downloads"})
    first = [m["id"] for m in r.json()]
    _insert(hub, "ties", [{"name": "late", **same}])  # the highest primary key: it sorts first
    rest, _ = _walk_from(r.links["next"]["url"])
    assert first + rest == newest_first

    bad = httpx.get(f"{hub.url}/api/models", params={"author": "ties", "cursor": "not-a-cursor"})
    assert bad.status_code == 400 and "Link header" in bad.json()["error"]
    other_sort = r.links["next"]["url"].replace("sort=downloads", "sort=likes")
    assert httpx.get(other_sort).status_code == 400  # a cursor belongs to its sort order


def _walk_from(url: str) -> tuple[list[str], int]:
    ids, pages = [], 0
    while url:
        r = httpx.get(url)
        assert r.status_code == 200, r.text
        ids += [m["id"] for m in r.json()]
        pages += 1
        url = r.links.get("next", {}).get("url")
    return ids, pages


def test_private_repos_are_listed_only_to_who_may_read_them(hub):
    from cove.server.auth.service import create_account, create_token

    with _store(hub).session() as s:
        create_account(s, "root", "user", is_admin=True)
        create_account(s, "carol", "user")
        hub.tokens["root"] = create_token(s, "root")
        hub.tokens["carol"] = create_token(s, "carol")
    hub.api().create_repo("alice/prv-public")
    hub.api().create_repo("alice/prv-alice", private=True)
    hub.api().create_repo("acme/prv-acme", private=True)
    hub.api(user="bob").create_repo("bob/prv-bob", private=True)
    everything = {"alice/prv-public", "alice/prv-alice", "acme/prv-acme", "bob/prv-bob"}
    seen = {
        "anonymous": {"alice/prv-public"},
        "carol": {"alice/prv-public"},  # another user, in no org
        "bob": {"alice/prv-public", "bob/prv-bob", "acme/prv-acme"},  # a read member of acme
        "alice": {"alice/prv-public", "alice/prv-alice", "acme/prv-acme"},  # owner; writer in acme
        "alice-read": {"alice/prv-public", "alice/prv-alice", "acme/prv-acme"},  # a read token reads
        "root": everything,  # a site admin
    }
    for who, expected in seen.items():
        user = None if who == "anonymous" else who
        assert {m.id for m in hub.api(user=user).list_models(search="prv-")} == expected, who
        assert set(_walk(hub, {"search": "prv-", "sort": "createdAt"}, user=user)[0]) == expected, who
        private = {m.id for m in hub.api(user=user).list_models(search="prv-", author="acme")}
        assert private == expected & {"acme/prv-acme"}, who
    assert {m.private for m in hub.api().list_models(search="prv-alice")} == {True}
    hub.api().update_repo_settings("alice/prv-alice", private=False)
    assert {m.id for m in hub.api(user=None).list_models(search="prv-")} == {
        "alice/prv-public",
        "alice/prv-alice",
    }


def test_a_bad_stored_row_never_breaks_the_list(hub, caplog):
    """Rows from before card text was validated at the door: a lone surrogate (once a 500 for every
    caller of list_models), a NaN, a card that is not JSON or not an object."""
    caplog.set_level(logging.WARNING, logger="cove.server")  # the suite quiets "cove" to errors
    _insert(
        hub,
        "badrow",
        [
            {
                "name": "surrogate",
                "card_json": json.dumps({"tags": ["ok", "\udc80"], "pipeline_tag": "fill-mask"}),
            },
            {"name": "nan", "card_json": '{"tags": ["nan-tag"], "score": NaN}'},
            {"name": "not-json", "card_json": "{not json"},
            {"name": "a-list", "card_json": "[1, 2]"},
        ],
    )
    for user in (None, "alice", "bob"):
        listed = {m.id: m for m in hub.api(user=user).list_models()}  # every page of everything
        assert {"badrow/surrogate", "badrow/nan", "badrow/not-json", "badrow/a-list"} <= set(listed)
        assert listed["badrow/surrogate"].tags == ["ok", "\ufffd", "fill-mask"]
    with_card = {m.id: m for m in hub.api(user=None).list_models(author="badrow", cardData=True)}
    assert with_card["badrow/nan"].card_data["score"] is None
    assert with_card["badrow/surrogate"].card_data["tags"] == ["ok", "\ufffd"]
    assert [m.id for m in hub.api().list_models(author="badrow", filter="fill-mask")] == ["badrow/surrogate"]
    assert [m.id for m in hub.api().list_models(author="badrow", filter="\ufffd")] == ["badrow/surrogate"]
    assert "badrow/surrogate" in caplog.text and "badrow/nan" in caplog.text
    # these rows have no commits (nothing to resolve for full=True): they are left out and logged
    caplog.clear()
    assert list(hub.api().list_models(author="badrow", full=True)) == []
    assert "could not be listed" in caplog.text


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_backfills_tags_from_stored_cards(backend, tmp_path, request):
    from cove.store import RepoTagRow, make_engine, schema

    url = (
        f"sqlite:///{tmp_path / 'hub.sqlite'}"
        if backend == "sqlite"
        else request.getfixturevalue("postgres").new_database()
    )
    engine = make_engine(url)
    schema.upgrade(engine, "0001")
    cards = {
        "good": json.dumps({"pipeline_tag": "Fill-Mask", "license": "mit", "tags": ["x" * 300, "nul\u0000"]}),
        "surrogate": json.dumps({"tags": ["\udc80"]}),
        "nan": '{"tags": ["n"], "v": NaN}',
        "broken": "{oops",
    }
    with engine.begin() as conn:
        for name, card in cards.items():
            conn.execute(
                text(
                    "INSERT INTO repos (type, namespace, name, private, created_at, updated_at, card_json, "
                    "downloads) VALUES ('model', 'old', :name, false, :t, :t, :card, 0)"
                ),
                {"name": name, "t": T0, "card": card},
            )
        conn.execute(
            text(
                "INSERT INTO repos (type, namespace, name, private, created_at, updated_at, card_json, "
                "downloads) VALUES ('space', 'old', 'sp', false, :t, :t, :card, 0)"
            ),
            {"t": T0, "card": json.dumps({"models": ["Old/Good"], "tags": ["demo"]})},
        )
    assert schema.upgrade(engine) == ("0001", schema.head_revision())
    with engine.connect() as conn:
        names = dict(conn.execute(text("SELECT id, name FROM repos")).all())
        tags = {(names[r.repo_id], r.kind, r.value) for r in conn.execute(select(RepoTagRow.__table__))}
    assert tags == {
        ("good", "tag", "fill-mask"),
        ("good", "tag", "license:mit"),
        ("good", "task", "fill-mask"),  # the card fields the website's sidebar filters by
        ("good", "license", "mit"),
        ("good", "tag", "nul\ufffd"),  # no NUL in PostgreSQL text; the 300-character tag is not indexed
        ("surrogate", "tag", "\ufffd"),
        ("nan", "tag", "n"),
        ("sp", "tag", "demo"),
        ("sp", "model", "old/good"),
    }
    engine.dispose()


def test_the_query_runs_in_the_database(hub):
    """1,200 repos inserted directly: a page loads only its own rows (page size + 1), whatever the filter,
    sort or caller, and the page's first request does not grow with the table."""
    from cove.store import RepoRow, RepoTagRow, RepoTermRow
    from cove.store.search import id_terms

    n = 1200
    with _store(hub).engine.begin() as conn:
        start = conn.execute(select(RepoRow.id).order_by(RepoRow.id.desc()).limit(1)).scalar() or 0
        conn.execute(
            insert(RepoRow.__table__),
            [
                {
                    "id": start + 1 + i,
                    "type": "model",
                    "namespace": "bulk",
                    "name": f"m{i:04d}",
                    "private": i % 10 == 0,
                    "created_at": T0 + dt.timedelta(minutes=i),
                    "updated_at": T0 + dt.timedelta(minutes=i),
                    "card_json": "{}",
                    "downloads": i % 37,
                }
                for i in range(n)
            ],
        )
        conn.execute(
            insert(RepoTagRow.__table__),
            [
                {"repo_id": start + 1 + i, "kind": "tag", "value": "even" if i % 2 == 0 else "odd"}
                for i in range(n)
            ],
        )
        conn.execute(  # the search terms the store (or the 0004 migration) gives each repo
            insert(RepoTermRow.__table__),
            [
                {"repo_id": start + 1 + i, "source": "id", "term": term}
                for i in range(n)
                for term in id_terms(f"bulk/m{i:04d}")
            ],
        )
        if conn.dialect.name == "postgresql":  # explicit ids: move the sequence past them
            conn.execute(text("SELECT setval('repos_id_seq', (SELECT max(id) FROM repos))"))
    loaded: list[int] = []

    def count(target, _context):  # type: ignore[no-untyped-def]
        loaded.append(target.id)

    event.listen(RepoRow, "load", count)
    try:
        for user, params in [
            (None, {}),
            (None, {"author": "bulk", "sort": "downloads"}),
            ("alice", {"search": "bulk/m1", "sort": "lastModified"}),
            (None, {"filter": "odd", "sort": "createdAt", "direction": "1"}),
        ]:
            loaded.clear()
            headers = {"Authorization": f"Bearer {hub.tokens[user]}"} if user else {}
            r = httpx.get(f"{hub.url}/api/models", params=params, headers=headers)
            assert r.status_code == 200 and len(r.json()) == 3 and "next" in r.links, params
            assert len(loaded) <= 4, (params, len(loaded))  # the page and one row to know there is more
        loaded.clear()
        odd = [
            m.id
            for m in hub.api(user=None).list_models(author="bulk", filter="odd", sort="downloads", limit=10)
        ]
        assert len(odd) == 10 and len(loaded) <= 4 * 4  # four pages of three
        assert all(int(i.rsplit("m", 1)[1]) % 2 == 1 for i in odd)
    finally:
        event.remove(RepoRow, "load", count)
    # the last page of a filtered walk: private rows (every tenth) are not in it for anonymous callers
    ids, _ = _walk(hub, {"author": "bulk", "search": "m119"})
    assert ids == [f"bulk/m119{d}" for d in range(1, 10)]
