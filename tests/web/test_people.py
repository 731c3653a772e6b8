"""User and organisation pages (/{name}): their repos, private ones only for who may read them, an
organisation's members (roles for its members only), a user's organisations, and 404 pages."""

from __future__ import annotations

import re

from tests.web.conftest import readme


def _section(page, plural: str) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    """A repo section of the page: its count and the repo ids it shows."""
    m = re.search(rf'<section class="person-section person-{plural}">(.*?)</section>\s*(?=<section|</section)',
                  page.text, re.S)  # fmt: skip
    assert m is not None, plural
    count = int(re.search(r'<span class="muted">(\d+)</span>', m.group(1)).group(1))  # type: ignore[union-attr]
    return count, re.findall(r'<h3><a href="[^"]*">([^<]*)</a>', m.group(1))


def _people(web):  # type: ignore[no-untyped-def]
    web.user("alice", org="acme", role="admin")
    web.user("bob", org="acme", role="read")
    web.user("carol")
    web.repo("alice/public-model", {"README.md": readme({"pipeline_tag": "fill-mask"})})
    web.repo("alice/secret-model", private=True)
    web.repo("alice/notes", repo_type="dataset")
    web.repo("acme/org-model")
    web.repo("acme/org-secret", private=True)
    web.repo("acme/demo", repo_type="space", private=True)


def test_a_user_page_lists_their_repos_and_organisations(web):
    _people(web)
    page = web.get("/alice")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<h1>alice</h1>" in page.text and '<span class="badge">user</span>' in page.text
    assert _section(page, "models") == (1, ["alice/public-model"])
    assert _section(page, "datasets") == (1, ["alice/notes"])
    assert _section(page, "spaces") == (0, [])
    assert 'href="/alice/public-model"' in page.text and 'href="/datasets/alice/notes"' in page.text
    assert '<a href="/acme">acme</a>' in page.text  # her organisation
    assert '<span class="badge role">' not in page.text  # roles are not for the world
    own = web.get("/alice", user="alice")
    assert _section(own, "models") == (2, ["alice/secret-model", "alice/public-model"])
    assert '<a href="/acme">acme</a> <span class="badge role">admin</span>' in own.text
    assert _section(web.get("/alice", user="carol"), "models") == (1, ["alice/public-model"])


def test_an_organisation_page_lists_its_repos_and_members(web):
    _people(web)
    outsider = web.get("/acme", user="carol")
    assert '<span class="badge">organisation</span>' in outsider.text
    assert _section(outsider, "models") == (1, ["acme/org-model"])
    assert _section(outsider, "spaces") == (0, [])
    assert '<a href="/alice">alice</a>' in outsider.text and '<a href="/bob">bob</a>' in outsider.text
    assert '<span class="badge role">' not in outsider.text
    for member in ("alice", "bob"):  # any member reads the org's private repos and sees the roles
        page = web.get("/acme", user=member)
        assert _section(page, "models") == (2, ["acme/org-secret", "acme/org-model"]), member
        assert _section(page, "spaces") == (1, ["acme/demo"]), member
        assert '<a href="/alice">alice</a> <span class="badge role">admin</span>' in page.text
        assert '<a href="/bob">bob</a> <span class="badge role">read</span>' in page.text
    assert 'Members <span class="muted">2</span>' in outsider.text


def test_many_repos_link_to_the_filtered_list(web):
    web.user("prolific")
    for i in range(14):
        web.repo(f"prolific/m{i:02d}")
    page = web.get("/prolific")
    count, shown = _section(page, "models")
    assert count == 14 and len(shown) == 12
    assert '<a href="/models?author=prolific">All 14 models →</a>' in page.text
    listing = web.get("/models?author=prolific")
    assert listing.text.count('class="card repo-card"') == 14


def test_unknown_and_reserved_names_are_404_pages(web):
    web.user("alice")
    for path in ("/nobody", "/api", "/no%20such", "/-dash", "/a..b"):
        page = web.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html"), path
        assert page.headers["x-error-code"] == "NotFound", path
    assert "No user or organisation named &#39;nobody&#39; on this hub." in web.get("/nobody").text
    # a namespace with repos but no account (imported ones) still has a page; a private one does not
    web.repo("imported/model")
    web.repo("hidden-ns/model", private=True)
    assert web.get("/imported").status_code == 200
    assert web.get("/hidden-ns").status_code == 404
    # fixed pages are never taken for a name
    for path in ("/models", "/datasets", "/spaces", "/"):
        assert web.get(path).status_code == 200, path


def test_names_and_profile_text_are_escaped(web):
    from cove.server.auth.service import create_account

    with web.store.session() as s:
        create_account(s, "mallory", "user", fullname="<script>alert(1)</script>")
    page = web.get("/mallory")
    assert page.status_code == 200
    assert "<script>alert(1)</script>" not in page.text
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt;</h1>" in page.text
