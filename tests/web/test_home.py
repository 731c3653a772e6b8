"""The home page: the search box, what the caller sees counted, the recently updated repos of each type."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import update

from tests.web.conftest import readme


def _section(page, repo_type: str) -> str:  # type: ignore[no-untyped-def]
    m = re.search(rf'<section class="home-recent home-recent-{repo_type}">(.*?)</section>', page.text, re.S)
    assert m is not None, repo_type
    return m.group(1)


def _recent(page, repo_type: str) -> list[str]:  # type: ignore[no-untyped-def]
    return re.findall(r'<h3><a href="[^"]*">([^<]*)</a>', _section(page, repo_type))


def _counts(page) -> dict[str, int]:  # type: ignore[no-untyped-def]
    found = re.findall(r'class="home-count home-count-(\w+)"><strong>(\d+)</strong>', page.text)
    return {kind: int(n) for kind, n in found}


def test_an_empty_hub(web):
    page = web.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert _counts(page) == {"model": 0, "dataset": 0, "space": 0}
    assert "No models yet." in page.text and "No datasets yet." in page.text
    # the search box searches the lists, without JavaScript
    assert '<form method="get" action="/models" class="hero-search" role="search">' in page.text
    assert 'name="search"' in page.text and 'formaction="/datasets"' in page.text
    assert "<script" not in page.text


def test_counts_and_the_recently_updated_repos(web):
    web.user("alice")
    for i in range(8):
        web.repo(f"alice/model-{i}", {"README.md": readme({"pipeline_tag": "fill-mask"})})
    web.repo("alice/data", repo_type="dataset")
    web.repo("alice/app", {"README.md": readme({"sdk": "gradio"})}, repo_type="space")
    store = web.store
    with store.session() as s:  # model-3 was updated last
        row = store.get_repo(s, "model", "alice/model-3")
        s.execute(update(type(row)).where(type(row).id == row.id).values(updated_at=dt.datetime(2100, 1, 1)))
        s.commit()
    page = web.get("/")
    assert _counts(page) == {"model": 8, "dataset": 1, "space": 1}
    models = _recent(page, "model")
    assert models == ["alice/model-3", "alice/model-7", "alice/model-6", "alice/model-5", "alice/model-4",
                      "alice/model-2"]  # fmt: skip
    assert _recent(page, "dataset") == ["alice/data"] and _recent(page, "space") == ["alice/app"]
    assert 'href="/alice/model-3"' in page.text and 'href="/datasets/alice/data"' in page.text
    assert 'href="/spaces/alice/app"' in page.text and "gradio" in page.text
    assert '<a href="/models">Browse all models →</a>' in page.text


def test_private_repos_are_counted_and_shown_only_to_who_may_read_them(web):
    web.user("alice", org="acme")
    web.user("bob")
    web.repo("alice/public")
    web.repo("alice/secret", private=True)
    web.repo("acme/org-secret", private=True)
    web.repo("acme/org-data", repo_type="dataset", private=True)
    for user, models, datasets in [(None, 1, 0), ("bob", 1, 0), ("alice", 3, 1)]:
        page = web.get("/", user=user)
        assert _counts(page) == {"model": models, "dataset": datasets, "space": 0}, user
        shown = set(_recent(page, "model"))
        assert ("alice/secret" in shown) == (user == "alice"), user
        assert ("acme/org-secret" in page.text) == (user == "alice"), user


def test_card_values_are_escaped(web):
    web.user("mallory")
    web.repo("mallory/x", {"README.md": readme({"pipeline_tag": "<script>alert(1)</script>"})})
    page = web.get("/")
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_api_clients_still_get_json_errors_and_pages_stay_html(web):
    # the home page is HTML for any client; the API's paths are untouched by the website's routes
    assert web.client.get("/").headers["content-type"].startswith("text/html")
    assert web.client.get("/api/models").json() == []
