"""A space's page in Chromium: the app (a real gradio Blocks app behind the space proxy) runs in the page's
frame, and a person types, submits and reads its answer there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from cove.server.spaces.target import RUNNING, SLEEPING, SpaceTarget
from tests.server.conftest import LiveHub
from tests.spaces.apps import EchoApps, Locator, echo_apps, locator_for
from tests.web.browser.conftest import commit_files, sign_in

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]

SPACE, PRIVATE, SLEEPY = "alice/echo", "alice/hidden-echo", "alice/sleepy-echo"
README = "---\ntitle: Echo\nsdk: gradio\napp_file: app.py\n---\n# Echo\nTypes back what you write.\n"


@pytest.fixture(scope="module")
def apps() -> Iterator[EchoApps]:
    yield from echo_apps(SPACE, PRIVATE)


@pytest.fixture(scope="module")
def locate(apps: EchoApps) -> Locator:
    return locator_for(apps, uds=(SPACE,), port=(PRIVATE,))


@pytest.fixture(scope="module")
def space_hub(live: LiveHub, locate: Locator) -> LiveHub:
    # the runtime runs nothing here (COVE_SPACES=off) and the app's proxy asks the stand-in instead
    live.app.state.spaces.settings.spaces = "off"  # type: ignore[attr-defined]
    live.app.state.space_proxy.locate = locate  # type: ignore[attr-defined]
    commit_files(live, SPACE, {"README.md": README, "app.py": "import gradio\n"}, repo_type="space")
    commit_files(live, PRIVATE, {"README.md": README}, repo_type="space", private=True)
    commit_files(live, SLEEPY, {"README.md": README}, repo_type="space")
    return live


def _echo_in_frame(page: Any, text: str) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    frame = page.frame_locator("iframe.space-frame")
    box = frame.locator("#echo-in textarea")
    box.fill(text)
    frame.locator("#echo-go").click()
    expect(frame.locator("#echo-out textarea")).to_have_value(text)


def test_the_space_page_runs_the_app_in_its_frame(space_hub: LiveHub, page: Any, shot: Any) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto(f"/spaces/{SPACE}")
    expect(page.locator(".space-stage")).to_have_text("Running")
    _echo_in_frame(page, "Hello from the space page")
    shot(page, "space-page-running-app")


def test_a_private_space_runs_for_its_signed_in_owner_only(space_hub: LiveHub, page: Any) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    response = page.goto(f"/spaces/{PRIVATE}/")
    assert response is not None and response.status == 404
    sign_in(page, space_hub, "alice")
    page.goto(f"/spaces/{PRIVATE}")
    expect(page.locator(".space-stage")).to_have_text("Running")
    _echo_in_frame(page, "only alice sees this")


def test_a_sleeping_space_shows_a_waking_page_then_the_app(
    space_hub: LiveHub, locate: Locator, apps: EchoApps, page: Any, shot: Any
) -> None:
    expect = pytest.importorskip("playwright.sync_api").expect
    locate.targets[SLEEPY] = SpaceTarget(SLEEPING)
    page.goto(f"/spaces/{SLEEPY}")
    expect(page.locator(".space-stage")).to_have_text("Sleeping")
    frame = page.frame_locator("iframe.space-frame")
    expect(frame.get_by_role("heading")).to_have_text(f"{SLEEPY} is waking up")
    shot(page, "space-page-waking")
    # the runtime has the app up again (it runs the echo app of the space above): the frame's own refresh
    # shows it, with no action of the visitor
    locate.targets[SLEEPY] = SpaceTarget(RUNNING, uds=apps.uds)
    _echo_in_frame(page, "awake now")
