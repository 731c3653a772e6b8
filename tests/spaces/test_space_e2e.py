"""Spaces end to end, through the hub's proxy at /spaces/{owner}/{name}/: pushed with huggingface_hub, built
and run by the runtime in the sandbox, called with the real gradio_client (Client("owner/name") with
HF_ENDPOINT set, as a user would), one of them running cove.pipeline on a model it loads from this hub,
and typed into in headless Chromium on the space's page."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.server.conftest import LiveHub
from tests.spaces.conftest import auth, push, readme, wait_stage
from tests.web.browser.conftest import _CHROMIUM, browser, context, page, shot  # noqa: F401

pytestmark = [pytest.mark.server, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
MINILM = "sentence-transformers/all-MiniLM-L6-v2"

ECHO_BLOCKS = """
import gradio as gr

with gr.Blocks(title="Echo space") as demo:
    text = gr.Textbox(label="Text", elem_id="echo-in")
    out = gr.Textbox(label="Echo", elem_id="echo-out")
    gr.Button("Echo", elem_id="echo-go").click(lambda t: "echo: " + t, text, out, api_name="echo")

demo.launch()
"""

PIPELINE_APP = """
import gradio as gr
import cove

extractor = cove.pipeline("feature-extraction", model="alice/minilm")

def embed(text):
    return [round(float(x), 6) for x in extractor(text)[0][0]]

gr.Interface(embed, "text", "json", api_name="embed").launch()
"""


@pytest.fixture(scope="module")
def live(space_hub: LiveHub) -> Iterator[LiveHub]:
    """The browser fixtures' hub is the module's space hub; Chromium closes with the module."""
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse online switch has not run yet
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        push(space_hub, "alice/echo-blocks", {"README.md": readme(), "app.py": ECHO_BLOCKS})
    wait_stage(space_hub, "alice/echo-blocks", "RUNNING")
    yield space_hub
    _CHROMIUM.close()


def gradio_client(hub: LiveHub, space: str, *args: Any, api_name: str) -> Any:
    """gradio_client.Client(space) in a fresh process with HF_ENDPOINT set: it finds the space through
    space_info().host and the runtime stage, as against huggingface.co."""
    code = (
        "import json, sys\n"
        "from gradio_client import Client\n"
        "client = Client(sys.argv[1], verbose=False)\n"
        "print(json.dumps(client.predict(*json.loads(sys.argv[2]), api_name=sys.argv[3])))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.endswith("_OFFLINE")}
    env.update({"HF_ENDPOINT": hub.url, "PYTHONPATH": str(ROOT / "src"), "GRADIO_ANALYTICS_ENABLED": "False"})
    run = subprocess.run(
        [sys.executable, "-c", code, space, json.dumps(list(args)), api_name],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_gradio_client_finds_and_calls_the_space(live):
    assert gradio_client(live, "alice/echo-blocks", "hi there", api_name="/echo") == "echo: hi there"


def test_space_info_says_where_the_app_is(live):
    api = live.api()
    space = api.space_info("alice/echo-blocks")
    assert space.host == f"{live.url}/spaces/alice/echo-blocks/"
    assert space.subdomain == "alice-echo-blocks" and space.sdk == "gradio"
    assert space.runtime is not None and space.runtime.stage == "RUNNING"
    runtime = api.get_space_runtime("alice/echo-blocks")
    assert runtime.stage == "RUNNING" and runtime.hardware == "cpu-basic"


def read_sse(hub, repo_id: str, which: str, until: str, timeout: float = 60) -> str:
    seen = []
    deadline = time.monotonic() + timeout
    with httpx.stream(
        "GET", f"{hub.url}/api/spaces/{repo_id}/logs/{which}", headers=auth(hub), timeout=timeout
    ) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if line.startswith("data: {"):
                seen.append(json.loads(line[6:])["data"])
                if until in seen[-1]:
                    break
            if time.monotonic() > deadline:
                break
    return "".join(seen)


def test_logs_are_sse_and_owner_only(live):
    space_hub = live
    wait_stage(space_hub, "alice/echo-blocks", "RUNNING")
    assert "Running on local URL" in read_sse(space_hub, "alice/echo-blocks", "run", "Running on local URL")
    build = read_sse(space_hub, "alice/echo-blocks", "build", "Build done")
    assert "Build done" in build and "virtualenv" in build
    # the stock client's reader understands the stream (a finished build's log ends)
    logs = space_hub.api().fetch_space_logs("alice/echo-blocks", build=True)
    assert any("Build done" in line for line in logs)
    for headers in ({}, auth(space_hub, "bob")):
        r = httpx.get(f"{space_hub.url}/api/spaces/alice/echo-blocks/logs/run", headers=headers, timeout=30)
        assert r.status_code in (401, 403, 404), r.status_code


def test_a_space_runs_cove_pipeline_on_a_model_of_this_hub(live):
    from cove import pipeline
    from cove.hub.bundled import bundled_path, find_bundled

    folder = bundled_path(find_bundled(MINILM))  # type: ignore[arg-type]
    if folder is None:
        pytest.skip(f"the package that bundles {MINILM} is not installed")
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        api = live.api()
        api.create_repo("alice/minilm")
        api.upload_folder(repo_id="alice/minilm", folder_path=str(folder), commit_message="MiniLM")
        push(live, "alice/embedder", {"README.md": readme(), "app.py": PIPELINE_APP})
    wait_stage(live, "alice/embedder", "RUNNING", timeout=400)
    text = "Spaces run on this hub."
    remote = gradio_client(live, "alice/embedder", text, api_name="/embed")
    local = pipeline("feature-extraction", model=str(folder))(text)[0][0]
    assert len(remote) == len(local) == 384
    assert max(abs(a - b) for a, b in zip(remote, local)) < 1e-4


def test_the_space_page_runs_the_app_and_a_person_uses_it(live, page, shot):  # noqa: F811
    expect = pytest.importorskip("playwright.sync_api").expect
    page.goto("/spaces/alice/echo-blocks")
    expect(page.locator(".space-stage")).to_have_text("Running")
    frame = page.frame_locator("iframe.space-frame")
    frame.locator("#echo-in textarea").fill("typed in Chromium")
    frame.locator("#echo-go").click()
    expect(frame.locator("#echo-out textarea")).to_have_value("echo: typed in Chromium")
    shot(page, "space-runtime-echo")
