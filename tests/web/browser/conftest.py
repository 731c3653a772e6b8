"""Browser tests: one headless Chromium (Debian's, driven by Playwright) for the run of these tests, a live
`cove serve` per module (tests/server/conftest.py's start_hub: uvicorn on a free 127.0.0.1 port, a temp data
dir, users alice and bob with tokens), a fresh browser context per test, and screenshots for review.

Skipped, saying why, where the `playwright` package or the chromium binary is missing. Screenshots go to
$COVE_SCREENSHOTS, else tests/web/screenshots/ (ignored by git); the run's summary prints the folder.

Playwright's sync API keeps an event loop on the main thread while it runs, and asyncio.run() refuses to
start beside it: the browser is closed as soon as the last browser test of a contiguous run has finished, so
tests collected after these still run their own loops."""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import Request
from fastapi.responses import HTMLResponse

from cove.server.web.session import WebCaller
from tests.server.conftest import LiveHub, start_hub

CHROMIUM = os.environ.get("COVE_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 60_000  # a busy 2-core machine: auto-waiting with room, never a fixed sleep
HERE = Path(__file__).parent
SCREENSHOTS = Path(os.environ.get("COVE_SCREENSHOTS") or HERE.parent / "screenshots")


class _Chromium:
    """The run's one browser, launched on first use and closed when the browser tests are done."""

    def __init__(self) -> None:
        self.playwright: Any = None
        self.browser: Any = None

    def get(self) -> Any:
        if self.browser is None:
            sync_api = pytest.importorskip(
                "playwright.sync_api", reason="the `playwright` Python package is not installed"
            )
            if shutil.which(CHROMIUM) is None:
                pytest.skip(f"no chromium at {CHROMIUM} (Debian's `chromium` package; or set COVE_CHROMIUM)")
            sync_api.expect.set_options(timeout=TIMEOUT_MS)
            self.playwright = sync_api.sync_playwright().start()
            self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        return self.browser

    def close(self) -> None:
        if self.browser is not None:
            self.browser.close()
            self.playwright.stop()
        self.browser = self.playwright = None


_CHROMIUM = _Chromium()
_SHOTS: list[Path] = []


def _is_browser_test(item: pytest.Item | None) -> bool:
    return item is not None and Path(str(item.path)).is_relative_to(HERE)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    if not _is_browser_test(nextitem):
        _CHROMIUM.close()


def pytest_sessionfinish(session: pytest.Session) -> None:
    _CHROMIUM.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _SHOTS:
        terminalreporter.write_line(f"browser screenshots: {SCREENSHOTS} ({len(_SHOTS)} written)")


@pytest.fixture
def browser() -> Any:
    return _CHROMIUM.get()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """A live hub for the module (SQLite + disk blobs)."""
    hub, server, thread = start_hub(tmp_path_factory.mktemp("web-hub"))
    yield hub
    server.should_exit = True  # type: ignore[attr-defined]
    thread.join(timeout=10)


@pytest.fixture
def context(browser: Any, live: LiveHub) -> Iterator[Any]:
    """A fresh browser context (no cookies) whose relative URLs go to the module's hub."""
    ctx = browser.new_context(base_url=live.url, viewport={"width": 1280, "height": 900})
    ctx.set_default_timeout(TIMEOUT_MS)
    ctx.set_default_navigation_timeout(TIMEOUT_MS)
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: Any) -> Iterator[Any]:
    """A page of the test's context; an uncaught script error on it fails the test."""
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(str(exc)))
    yield tab
    assert not errors, f"uncaught script errors in the page: {errors}"


@pytest.fixture
def shot() -> Any:
    """shot(page, name): a full-page screenshot of what the page shows now, for review."""

    def take(tab: Any, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        tab.screenshot(path=str(path), full_page=True)
        _SHOTS.append(path)
        return path

    return take


def commit_files(
    hub: LiveHub,
    repo_id: str,
    files: dict[str, bytes | str] | Path,
    *,
    repo_type: str = "model",
    private: bool = False,
    title: str = "Add files",
) -> str:
    """Commit files (a mapping, or every file of a folder) to a repo's main, creating the repo; returns the
    commit id. Through the store, as tests/web/conftest.py's WebHub.repo does."""
    from cove.store import CommitOp

    if isinstance(files, Path):
        files = {
            p.relative_to(files).as_posix(): p.read_bytes() for p in sorted(files.rglob("*")) if p.is_file()
        }
    store = hub.app.state.hub.store  # type: ignore[attr-defined]
    namespace = repo_id.split("/")[0]
    with store.session() as s:
        if store.exists(s, repo_type, repo_id):
            row = store.get_repo(s, repo_type, repo_id)
        else:
            row = store.create_repo(s, repo_type, repo_id, private=private, author=namespace)
        ops = [
            CommitOp("add", path, store.store_regular(data.encode() if isinstance(data, str) else data, path))
            for path, data in files.items()
        ]
        return store.commit(s, row, ops, title=title, author=namespace)


# -- the try-it harness: a page holding only the widget partial, for any repo and task ----------------

HARNESS_CSRF = "csrf-token-of-the-widget-harness"
HARNESS = """{% extends "base.html" %}
{% from "partials/try_it.html" import try_it %}
{% block head %}<meta name="csrf-token" content="{{ csrf_token or harness_csrf }}">{% endblock %}
{% block content %}<h1>{{ repo_id }}</h1>
<section class="try-it-box"><h2>Try it <span class="chip task">{{ task }}</span></h2>
{{ try_it(repo_id, task, examples=examples, parameters=parameters, chat=chat, mask_token=mask_token) }}
</section>
{% endblock %}"""


def install_first(hub: LiveHub, router: Any) -> None:
    """router's routes in front of every route of the running hub (the website's catch-alls included)."""
    for route in reversed(router.routes):
        hub.app.router.routes.insert(0, route)  # type: ignore[attr-defined]


def _harness(request: Request, namespace: str, name: str, caller: WebCaller) -> HTMLResponse:
    # caller: the signed-in browser's session, so the layout carries its CSRF token as a page does
    from cove.server.web.render import environment
    from cove.server.web.session import layout_context

    q = request.query_params
    html = (
        environment()
        .from_string(HARNESS)
        .render(
            request=request,
            **layout_context(request),
            harness_csrf=HARNESS_CSRF,
            repo_id=f"{namespace}/{name}",
            task=q.get("task", name),
            chat=q.get("chat") == "1",
            examples=json.loads(q.get("examples", "null")),
            parameters=json.loads(q.get("parameters", "null")),
            mask_token=q.get("mask_token"),
        )
    )
    return HTMLResponse(html)


@pytest.fixture(scope="module")
def try_it_harness(live: LiveHub) -> LiveHub:
    """GET /__try-it/{ns}/{name}?task=...&chat=1&examples=JSON&parameters=JSON&mask_token=...: the widget
    partial alone on a page of the site's layout, so widgets are tested whatever page embeds them."""
    from fastapi import APIRouter

    router = APIRouter()
    router.add_api_route("/__try-it/{namespace}/{name}", _harness, methods=["GET"])
    install_first(live, router)
    return live


def open_try_it(page: Any, repo_id: str, task: str, **query: Any) -> Any:
    """Open the harness for repo_id and task; returns the mounted widget's locator."""
    expect = pytest.importorskip("playwright.sync_api").expect
    params = {"task": task, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in query.items()}}
    page.add_init_script("window.__pwned = 0")
    page.goto(f"/__try-it/{repo_id}?{urlencode(params)}")
    widget = page.locator("#try-it")
    expect(widget).to_have_attribute("data-ready", "true")
    return widget


PASSWORD = "correct horse battery staple"


def give_password(hub: LiveHub, user: str, password: str = PASSWORD) -> None:
    from cove.server.auth.service import set_password

    with hub.app.state.hub.store.session() as s:  # type: ignore[attr-defined]
        set_password(s, user, password)


def sign_in(page: Any, hub: LiveHub, user: str, password: str = PASSWORD) -> None:
    """Sign in through /login (giving the user that password first), as a person does."""
    expect = pytest.importorskip("playwright.sync_api").expect
    give_password(hub, user, password)
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator(".mainnav .me")).to_have_text(user)


def needs_page(hub: LiveHub, path: str, branch: str) -> None:
    """Skip unless the hub serves the page at path (the pages land from other branches)."""
    import httpx

    r = httpx.get(hub.url + path, headers={"accept": "text/html"}, timeout=60)
    if r.status_code == 404:
        pytest.skip(f"waits for {branch}: GET {path} is a 404")


def card(front_matter: str, body: str = "") -> str:
    """A README.md: YAML front matter, then a Markdown body."""
    return f"---\n{front_matter.strip()}\n---\n{body}"
