"""The space runtime with real processes: pushes with the stock huggingface_hub client build a venv and run
the app in the sandbox; the stages, secrets and variables, restart/pause/sleep, crashes and fixes. The apps
are plain HTTP servers (they start at once); gradio apps, the logs and the stock clients are in
test_space_e2e.py."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.spaces.conftest import app_client, auth, locate, plain_app, push, readme, runtime, wait_stage

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_secrets_and_variables_reach_the_app_and_never_come_back(space_hub):
    api = space_hub.api()
    api.create_repo("alice/envy", repo_type="space", space_sdk="gradio")
    secret = "s3cr3t-value-that-must-not-leak"
    api.add_space_secret("alice/envy", "MY_TOKEN", secret, description="a token")
    api.add_space_variable("alice/envy", "GREETING", "hello there")
    app = plain_app(
        '    return {k: os.environ.get(k) for k in ("MY_TOKEN", "GREETING", "SPACE_ID", "HF_ENDPOINT", '
        '"GRADIO_ROOT_PATH")}\n'
    )
    push(space_hub, "alice/envy", {"README.md": readme(), "app.py": app}, create=False)
    wait_stage(space_hub, "alice/envy", "RUNNING")
    with app_client(space_hub, "alice/envy") as client:
        env = client.get("/").json()
    assert env["MY_TOKEN"] == secret and env["GREETING"] == "hello there"
    assert env["SPACE_ID"] == "alice/envy" and env["GRADIO_ROOT_PATH"] == "/spaces/alice/envy"
    assert env["HF_ENDPOINT"].startswith("http://127.0.0.1:")
    # every answer about the space: keys yes, the secret's value never
    answers = [
        httpx.get(f"{space_hub.url}/api/spaces/alice/envy{path}", headers=auth(space_hub), timeout=30).text
        for path in ("", "/runtime", "/secrets", "/variables")
    ]
    assert all(secret not in text for text in answers)
    assert "MY_TOKEN" in answers[2] and "hello there" in answers[3]
    assert set(api.get_space_variables("alice/envy")) == {"GREETING"}
    # only writers manage them
    r = httpx.post(
        f"{space_hub.url}/api/spaces/alice/envy/secrets",
        json={"key": "X", "value": "y"},
        headers=auth(space_hub, "bob"),
        timeout=30,
    )
    assert r.status_code in (403, 404)
    r = httpx.post(
        f"{space_hub.url}/api/spaces/alice/envy/secrets",
        json={"key": "HF_ENDPOINT", "value": "http://evil"},
        headers=auth(space_hub),
        timeout=30,
    )
    assert r.status_code == 400 and "HF_ENDPOINT" in r.text
    api.delete_space_secret("alice/envy", "MY_TOKEN")
    assert (
        "MY_TOKEN"
        not in httpx.get(f"{space_hub.url}/api/spaces/alice/envy/secrets", headers=auth(space_hub)).text
    )


def test_build_error_then_runtime_error_then_a_fix(space_hub):
    bad_req = "cove-test-no-such-package-7f3a9==1.0\n"
    push(
        space_hub, "alice/broken", {"README.md": readme(), "app.py": plain_app(), "requirements.txt": bad_req}
    )
    info = wait_stage(space_hub, "alice/broken", "BUILD_ERROR")
    space = space_hub.app.state.spaces.spaces["alice/broken"]
    assert "cove-test-no-such-package-7f3a9" in space.build_log.tail(60)
    assert "ERROR" in space.build_log.tail(60)  # pip's own error line
    assert "pip" in info["errorMessage"]
    # requirements fixed, but the app raises at start: RUNTIME_ERROR with the traceback
    crash = "raise RuntimeError('the model file is missing')\n"
    push(space_hub, "alice/broken", {"requirements.txt": "", "app.py": crash}, create=False)
    info = wait_stage(space_hub, "alice/broken", "RUNTIME_ERROR")
    assert "Traceback" in info["errorMessage"] and "the model file is missing" in info["errorMessage"]
    assert "the model file is missing" in space.run_log.tail(40)
    # a fix: it rebuilds and runs
    push(space_hub, "alice/broken", {"app.py": plain_app()}, create=False)
    wait_stage(space_hub, "alice/broken", "RUNNING")
    with app_client(space_hub, "alice/broken") as client:
        assert client.get("/").json() == {"ok": True}


def test_a_crashed_app_is_restarted_with_backoff(space_hub):
    app = plain_app(extra='ROUTES["/crash"] = lambda: os._exit(3)')
    push(space_hub, "alice/crashy", {"README.md": readme(), "app.py": app})
    wait_stage(space_hub, "alice/crashy", "RUNNING")
    with app_client(space_hub, "alice/crashy") as client, pytest.raises(httpx.HTTPError):
        client.get("/crash")
    space = space_hub.app.state.spaces.spaces["alice/crashy"]
    deadline = time.monotonic() + 60
    while space.crashes == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert space.crashes == 1
    assert "exited with status 3" in space.run_log.tail(5)
    wait_stage(space_hub, "alice/crashy", "RUNNING")  # restarted by the runtime (after 1 s), no push needed
    with app_client(space_hub, "alice/crashy") as client:
        assert client.get("/").json() == {"ok": True}


@pytest.mark.parametrize(
    ("files", "stage", "words"),
    [
        ({"README.md": readme(sdk=None), "app.py": "x"}, "CONFIG_ERROR", "no 'sdk'"),
        ({"README.md": readme(sdk="docker"), "app.py": "x"}, "CONFIG_ERROR", "Unknown sdk 'docker'"),
        (
            {"README.md": readme(app_file="../../etc/passwd"), "app.py": "x"},
            "CONFIG_ERROR",
            "not a path inside",
        ),
        ({"README.md": readme(app_file="missing.py"), "app.py": "x"}, "NO_APP_FILE", "not in the repo"),
        ({"README.md": readme(python_version='"3.2"'), "app.py": "x"}, "BUILD_ERROR", "python_version 3.2"),
        (
            {"README.md": readme(), "app.py": "x", "requirements.txt": "-e git+https://example.com/x\n"},
            "BUILD_ERROR",
            "only package requirements",
        ),
    ],
    ids=["no-sdk", "unknown-sdk", "app-file-outside", "app-file-missing", "python-missing", "pip-option"],
)
def test_bad_configs_get_a_clear_stage(space_hub, files, stage, words):
    name = f"alice/bad-{abs(hash(words)) % 10_000}"
    push(space_hub, name, files)
    info = wait_stage(space_hub, name, stage, timeout=60)
    assert words in info["errorMessage"], info


def test_an_app_that_never_listens_is_a_runtime_error(space_hub):
    settings = space_hub.app.state.spaces.settings
    settings.space_start_timeout_s, before = 3.0, settings.space_start_timeout_s
    try:
        push(space_hub, "alice/silent", {"README.md": readme(), "app.py": "import time\ntime.sleep(3600)\n"})
        info = wait_stage(space_hub, "alice/silent", "RUNTIME_ERROR", timeout=120)
    finally:
        settings.space_start_timeout_s = before
    assert "never listened" in info["errorMessage"]
    assert httpx.get(f"{space_hub.url}/api/health", timeout=10).status_code == 200


def test_sleep_wake_pause_restart_and_factory_rebuild(space_hub):
    api = space_hub.api()
    push(space_hub, "alice/nap", {"README.md": readme(), "app.py": plain_app()})
    wait_stage(space_hub, "alice/nap", "RUNNING")
    assert api.set_space_sleep_time("alice/nap", 2).sleep_time == 2
    wait_stage(space_hub, "alice/nap", "SLEEPING", timeout=60)
    target = locate(space_hub, "alice/nap")  # a visit wakes it; meanwhile the visitor is told "starting"
    assert target.stage in ("BUILDING", "RUNNING")
    wait_stage(space_hub, "alice/nap", "RUNNING", timeout=60)
    api.set_space_sleep_time("alice/nap", -1)  # the server's default again
    with app_client(space_hub, "alice/nap") as client:
        assert client.get("/").json() == {"ok": True}

    assert api.pause_space("alice/nap").stage == "PAUSED"
    assert locate(space_hub, "alice/nap").stage == "PAUSED"  # a visit does not wake a paused space
    space = space_hub.app.state.spaces.spaces["alice/nap"]
    assert space.proc is None
    assert api.restart_space("alice/nap").stage == "BUILDING"
    wait_stage(space_hub, "alice/nap", "RUNNING")
    assert "Reusing the environment" in space.build_log.tail(20)
    api.restart_space("alice/nap", factory_reboot=True)
    wait_stage(space_hub, "alice/nap", "RUNNING")
    assert "Reusing the environment" not in space.build_log.tail(20)
    assert "Creating a virtualenv" in space.build_log.tail(20)
    # bob may read the runtime of alice's public space but not restart or pause it
    r = httpx.post(f"{space_hub.url}/api/spaces/alice/nap/pause", headers=auth(space_hub, "bob"), timeout=30)
    assert r.status_code == 403


def test_the_least_recently_used_space_sleeps_past_max_running(space_hub):
    runtime_obj = space_hub.app.state.spaces
    for name in ("alice/lru-a", "alice/lru-b"):
        push(space_hub, name, {"README.md": readme(), "app.py": plain_app()})
        wait_stage(space_hub, name, "RUNNING")
    locate(space_hub, "alice/lru-b")  # b visited last
    settings = runtime_obj.settings
    running = [s for s in runtime_obj.spaces.values() if s.proc is not None and s.proc.poll() is None]
    oldest = min(running, key=lambda s: s.last_visit)
    settings.max_running_spaces, before = len(running), settings.max_running_spaces
    try:
        push(space_hub, "alice/lru-c", {"README.md": readme(), "app.py": plain_app()})
        wait_stage(space_hub, "alice/lru-c", "RUNNING")
        stages = {name: runtime(space_hub, name)["stage"] for name in ("alice/lru-a", "alice/lru-b")}
    finally:
        settings.max_running_spaces = before
    assert oldest.stage == "SLEEPING" and oldest.repo_id != "alice/lru-b"
    assert stages["alice/lru-b"] == "RUNNING"


@pytest.mark.parametrize(("mode", "words"), [("off", "COVE_SPACES=off"), ("admins", "COVE_SPACES=admins")])
def test_the_spaces_setting_decides_what_runs(space_hub, mode, words):
    settings = space_hub.app.state.spaces.settings
    settings.spaces, before = mode, settings.spaces
    name = f"alice/policy-{mode}"
    try:
        push(space_hub, name, {"README.md": readme(), "app.py": plain_app()})
        info = wait_stage(space_hub, name, "PAUSED", timeout=30)  # alice is no site admin
        assert words in info["message"]
        assert space_hub.api().restart_space(name).stage == "PAUSED"  # a restart does not get round it
    finally:
        settings.spaces = before
    assert space_hub.api().restart_space(name).stage == "BUILDING"
    wait_stage(space_hub, name, "RUNNING")


def test_a_static_space_serves_its_files(space_hub):
    page = "<!doctype html><title>static</title><p>Hello from a static space</p>"
    push(space_hub, "alice/site", {"README.md": readme(sdk="static"), "index.html": page})
    wait_stage(space_hub, "alice/site", "RUNNING")
    with app_client(space_hub, "alice/site") as client:
        assert client.get("/").text == page


def test_preload_from_hub_fills_the_apps_cache(space_hub):
    api = space_hub.api()
    api.create_repo("alice/weights")
    api.upload_file(
        path_or_fileobj=b'{"hidden_size": 8}', path_in_repo="config.json", repo_id="alice/weights"
    )
    app = plain_app(
        "    from huggingface_hub import hf_hub_download\n"
        '    path = hf_hub_download("alice/weights", "config.json", local_files_only=True)\n'
        '    return {"config": open(path).read()}\n'
    )
    push(
        space_hub,
        "alice/preloaded",
        {"README.md": readme(preload_from_hub="\n  - alice/weights config.json"), "app.py": app},
    )
    wait_stage(space_hub, "alice/preloaded", "RUNNING")
    with app_client(space_hub, "alice/preloaded") as client:
        assert client.get("/").json() == {"config": '{"hidden_size": 8}'}


def test_deleting_a_space_stops_its_app(space_hub):
    push(space_hub, "alice/doomed", {"README.md": readme(), "app.py": plain_app()})
    wait_stage(space_hub, "alice/doomed", "RUNNING")
    space = space_hub.app.state.spaces.spaces["alice/doomed"]
    proc = space.proc
    space_hub.api().delete_repo("alice/doomed", repo_type="space")
    assert proc is not None and proc.wait(timeout=30) is not None
    assert not space.dir.exists()
    assert locate(space_hub, "alice/doomed").stage == "NO_APP_FILE"
