"""Browser tests: one headless Chromium (Debian's, driven by Playwright) for the run of these tests, a live
`cove serve` per module (tests/server/conftest.py's start_hub: uvicorn on a free 127.0.0.1 port, a temp data
dir, users alice and bob with tokens), a fresh browser context per test, and screenshots for review.

Skipped, saying why, where the `playwright` package or the chromium binary is missing. Screenshots go to
$COVE_SCREENSHOTS, else tests/web/screenshots/ (ignored by git); the run's summary prints the folder.

Playwright's sync API keeps an event loop on the main thread while it runs, and asyncio.run() refuses to
start beside it: the browser is closed as soon as the last browser test of a contiguous run has finished, so
tests collected after these still run their own loops."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

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


def card(front_matter: str, body: str = "") -> str:
    """A README.md: YAML front matter, then a Markdown body."""
    return f"---\n{front_matter.strip()}\n---\n{body}"
