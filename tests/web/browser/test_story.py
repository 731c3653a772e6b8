"""The website end to end, as a person uses it in Chromium (issue 13's story): sign in, create a private repo,
upload files, see the card rendered and the files listed, browse to the commit and its diff, edit the card,
sign out and get a 404 for the private repo; filter the model list by task. Every page kind it passes is
screenshotted for review."""

from __future__ import annotations

import re

import pytest

from tests.web.browser.conftest import card, commit_files, give_password, needs_page, sign_in

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the `playwright` Python package is not installed"
)
expect = sync_api.expect

pytestmark = pytest.mark.browser

FIRST_CARD = card(
    "license: apache-2.0\npipeline_tag: text-classification\ntags:\n- story",
    "# Secret model\n\nHello from the uploaded card.\n\n| metric | value |\n|---|---|\n| accuracy | 0.91 |\n",
)
EDITED_CARD = card(
    "license: mit\npipeline_tag: text-classification\ntags:\n- story",
    "# Secret model\n\nEdited in the browser.\n",
)


@pytest.fixture(scope="module")
def site(live):  # type: ignore[no-untyped-def]
    """alice with a password; public models of two tasks for the list; a dataset for the viewer."""
    needs_page(live, "/login", "the accounts pages (webaccount)")
    needs_page(live, "/models", "the list pages (weblist)")
    give_password(live, "alice")
    for repo_id, task in (
        ("bob/pub-sentiment", "text-classification"),
        ("bob/pub-ner", "token-classification"),
    ):
        commit_files(live, repo_id, {"README.md": card(f"pipeline_tag: {task}", f"# {repo_id}\n")})
    commit_files(
        live, "bob/private-sentiment", {"README.md": card("pipeline_tag: text-classification")}, private=True
    )
    commit_files(
        live,
        "bob/tiny-csv",
        {
            "README.md": card("license: cc0-1.0", "# A tiny dataset\n"),
            "data/train.csv": "text,label\nhello,1\nbye,0\n",
        },
        repo_type="dataset",
    )
    return live


def test_a_wrong_password_is_refused_with_a_clear_page(site, page, shot):
    sign_in_page = page.goto("/login")
    assert sign_in_page is not None and sign_in_page.status == 200
    shot(page, "page-login")
    page.get_by_label("User name").fill("alice")
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()  # still anonymous
    shot(page, "page-login-refused")


def test_the_story_of_a_private_repo(site, page, shot):
    sign_in(page, site, "alice")

    # create a private repo
    page.get_by_role("link", name="New").click()
    expect(page).to_have_url(re.compile(r"/new$"))
    page.locator('input[name="name"]').fill("secret-model")
    page.get_by_label("private").check()
    shot(page, "page-new-repo")
    page.get_by_role("button", name="Create repository").click()
    expect(page).to_have_url(re.compile(r"/alice/secret-model$"))
    expect(page.locator(".repo-header .badge.private")).to_have_text("private")

    # upload two files
    page.goto("/alice/secret-model/upload/main")
    page.locator('input[name="files"]').set_input_files(
        [
            {"name": "README.md", "mimeType": "text/markdown", "buffer": FIRST_CARD.encode()},
            {"name": "config.json", "mimeType": "application/json", "buffer": b'{"model_type": "bert"}\n'},
        ]
    )
    page.get_by_label("Commit message").fill("Add the card and config")
    shot(page, "page-upload")
    page.get_by_role("button", name="Commit to main").click()

    # the files are listed, with their last commit
    expect(page).to_have_url(re.compile(r"/alice/secret-model/tree/main$"))
    files = page.locator("table.files td.name")
    expect(files).to_contain_text(["README.md", "config.json"])  # in order, after .gitattributes
    expect(page.locator("table.files tr", has_text="config.json").locator(".last-commit")).to_have_text(
        "Add the card and config"
    )
    shot(page, "page-tree")

    # the card is rendered, its metadata as chips
    page.get_by_role("link", name="secret-model").first.click()
    expect(page.locator(".markdown")).to_contain_text("Hello from the uploaded card.")
    expect(page.locator(".markdown table td", has_text="0.91")).to_be_visible()
    expect(page.locator(".repo-chips")).to_contain_text("text-classification")
    expect(page.locator(".repo-chips")).to_contain_text("apache-2.0")
    shot(page, "page-repo")

    # history, then the commit and its diff
    page.goto("/alice/secret-model/commits/main")
    commits = page.locator(".commits .commit-title")
    expect(commits.first).to_have_text("Add the card and config")
    shot(page, "page-commits")
    commits.first.get_by_role("link").click()
    expect(page).to_have_url(re.compile(r"/alice/secret-model/commit/[0-9a-f]{40}$"))
    expect(page.locator(".commit-head h2")).to_have_text("Add the card and config")
    expect(page.locator(".changed-files")).to_contain_text("README.md")
    expect(page.locator(".changed-files")).to_contain_text("config.json")
    expect(page.locator(".file-diff").first).to_contain_text("Hello from the uploaded card.")
    shot(page, "page-commit")

    # edit the card in the browser
    page.goto("/alice/secret-model/edit/main/README.md")
    editor = page.locator('textarea[name="content"]')
    expect(editor).to_have_value(FIRST_CARD)
    editor.fill(EDITED_CARD)
    page.get_by_label("Commit message").fill("Say it was edited")
    shot(page, "page-edit")
    page.get_by_role("button", name="Commit to main").click()
    expect(page).to_have_url(re.compile(r"/alice/secret-model$"))
    expect(page.locator(".markdown")).to_contain_text("Edited in the browser.")
    expect(page.locator(".markdown")).not_to_contain_text("Hello from the uploaded card.")
    expect(page.locator(".repo-chips")).to_contain_text("mit")

    # the edit's commit shows what changed in the card, its YAML key by key
    page.goto("/alice/secret-model/commits/main")
    expect(page.locator(".commits .commit-title").first).to_have_text("Say it was edited")
    page.locator(".commits .commit-title a").first.click()
    diff = page.locator(".file-diff", has_text="README.md")
    expect(diff).to_contain_text("Edited in the browser.")
    expect(diff).to_contain_text("Hello from the uploaded card.")
    expect(diff).to_contain_text("license")
    shot(page, "page-commit-card-diff")

    # the repo's settings page
    page.goto("/alice/secret-model/settings")
    expect(page.get_by_role("heading", name="Visibility")).to_be_visible()
    shot(page, "page-repo-settings")

    # sign out: the private repo is a 404 page, and it is in no list
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in")).to_be_visible()
    response = page.goto("/alice/secret-model")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("404")
    assert "Edited in the browser" not in page.content()
    shot(page, "page-404")
    page.goto("/models?search=secret")
    expect(page.locator(".empty")).to_be_visible()


def test_the_model_list_filters_by_task(site, page, shot):
    page.goto("/models")
    names = page.locator(".repo-card h3 a")
    expect(names).to_contain_text(["bob/pub-ner"])
    expect(names).to_contain_text(["bob/pub-sentiment"])
    shot(page, "page-models")
    page.locator(".facet-task a.facet-value", has_text="text-classification").click()
    expect(page).to_have_url(re.compile(r"[?&]task=text-classification"))
    expect(names).to_have_text(["bob/pub-sentiment"])  # not the NER model, not bob's private one
    expect(page.locator(".active-filters")).to_contain_text("text-classification")
    shot(page, "page-models-filtered")


@pytest.mark.parametrize(
    ("name", "url", "shows"),
    [
        ("home", "/", "Recently updated models"),
        ("user", "/bob", "bob/pub-sentiment"),
        ("datasets", "/datasets", "bob/tiny-csv"),
        ("dataset", "/datasets/bob/tiny-csv", "hello"),
        ("blob", "/datasets/bob/tiny-csv/blob/main/data/train.csv", "hello,1"),
    ],
)
def test_page_kinds_render(site, page, shot, name, url, shows):
    response = page.goto(url)
    assert response is not None and response.status == 200
    expect(page.locator("main")).to_contain_text(shows)
    shot(page, f"page-{name}")


def test_the_tokens_page(site, page, shot):
    sign_in(page, site, "alice")
    page.goto("/settings/tokens")
    expect(page.locator("main")).to_contain_text("token")
    shot(page, "page-settings-tokens")
