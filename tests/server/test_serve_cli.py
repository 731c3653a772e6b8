"""`cove serve` as users run it: a real process, bundled models imported on first start."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from tests.server.conftest import _free_port, start_hub

pytestmark = pytest.mark.server


@pytest.mark.slow
def test_cove_serve_process_shows_bundled_models(tmp_path):
    from cove.hub.bundled import BUNDLED, bundled_path

    port = _free_port()
    env = {**os.environ, "HF_HUB_DISABLE_TELEMETRY": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove.cli.main", "serve", "--port", str(port), "--data-dir", str(tmp_path)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
                time.sleep(0.2)
        else:
            pytest.fail("cove serve did not come up within 120 s")
        models = {m["id"] for m in httpx.get(f"{url}/api/models").json()}
        installed = {m.name for m in BUNDLED.values() if bundled_path(m) is not None}
        assert installed <= models
        if "sentence-transformers/all-MiniLM-L6-v2" in installed:
            from huggingface_hub import HfApi

            info = HfApi(endpoint=url, token=False).model_info("sentence-transformers/all-MiniLM-L6-v2")
            assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
                s.rfilename for s in info.siblings
            }
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_upload_size_limit_is_enforced(tmp_path):
    live, server, thread = start_hub(tmp_path, max_upload_bytes=2000, lfs_threshold_bytes=100)
    try:
        from huggingface_hub.errors import HfHubHTTPError

        api = live.api()
        api.create_repo("alice/limited")
        api.upload_file(path_or_fileobj=b"small", path_in_repo="ok.txt", repo_id="alice/limited")
        with pytest.raises(HfHubHTTPError) as err:
            api.upload_file(path_or_fileobj=b"x" * 5000, path_in_repo="big.txt", repo_id="alice/limited")
        assert "upload limit" in str(err.value)
        assert api.list_repo_files("alice/limited") == [".gitattributes", "ok.txt"]
    finally:
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)
