"""The sandbox, from the inside: a space's app reports what it could see and do. It must not read the hub's
database or data dir, another space's folder or secret, /etc/shadow, nor reach any address but the hub;
a memory hog and a fork bomb hit the limits and the hub keeps serving."""

from __future__ import annotations

import os
import socket

import httpx
import pytest

from tests.spaces.conftest import app_client, plain_app, push, readme, wait_stage

pytestmark = [pytest.mark.server, pytest.mark.slow]

PROBE_CODE = r"""
import socket, time, urllib.error, urllib.request

def can_read(path):
    try:
        if os.path.isdir(path):
            return os.listdir(path) is not None
        with open(path, "rb") as f:
            f.read(1)
        return True
    except OSError:
        return False

def can_connect(host, port):
    try:
        with socket.create_connection((host, port), timeout=3):
            return True
    except OSError:
        return False

def can_write(path):
    try:
        with open(path, "w") as f:
            f.write("x")
        return True
    except OSError:
        return False

def probe():
    env = os.environ
    hub = env["HF_ENDPOINT"]
    with urllib.request.urlopen(hub + "/api/health", timeout=10) as r:
        health = json.loads(r.read())
    try:
        urllib.request.urlopen(hub + "/api/models/alice/hidden", timeout=10)
        private = "visible"
    except urllib.error.HTTPError as exc:
        private = exc.code
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    environs = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environs.append(f.read().decode("latin-1"))
        except OSError:
            pass
    return {
        "uid": os.getuid(),
        "hub_health": health,
        "private_repo": private,
        "read": {p: can_read(p) for p in ("/etc/shadow", env["HUB_DB"], env["DATA_DIR"], env["OTHER_APP"])},
        "write": {p: can_write(p) for p in ("/usr/x", "/etc/x", "/home/user/app/x", "/tmp/x")},
        "connect": {f"{h}:{p}": can_connect(h, p) for h, p in (("8.8.8.8", 53), (env["HOST_IP"], int(env["HUB_PORT"])), ("127.0.0.1", 5432))},
        # the other space's secret is BOB_TOKEN (its value is only in this app's env as OTHER_SECRET)
        "other_secret_seen": any("BOB_TOKEN=" in e for e in environs) or "BOB_TOKEN" in env,
        "environs_read": len(environs),
        "pids": len(pids),
    }

def hog():
    try:
        block = bytearray(6 * 1024**3)
        return {"hog": "allocated", "size": len(block)}
    except MemoryError:
        return {"hog": "MemoryError"}

def forkbomb():
    children = 0
    error = None
    for _ in range(400):
        try:
            pid = os.fork()
        except OSError as exc:
            error = exc.errno
            break
        if pid == 0:
            time.sleep(15)
            os._exit(0)
        children += 1
    return {"children": children, "errno": error}

ROUTES.update({"/probe": probe, "/hog": hog, "/forkbomb": forkbomb, "/env": lambda: sorted(os.environ)})
"""
PROBE_APP = plain_app(extra=PROBE_CODE)


def host_ip() -> str:
    """A non-loopback address of this machine (the hub listens on 127.0.0.1 only, but the sandbox must not
    reach the host's interfaces at all)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect(("10.255.255.255", 1))
            return str(sock.getsockname()[0])
        except OSError:
            return "192.0.2.1"


@pytest.fixture(scope="module")
def probe_space(space_hub):
    import huggingface_hub.constants

    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse online switch has not run yet
        mp.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
        return _set_up(space_hub)


def _set_up(space_hub):
    api = space_hub.api()
    api.create_repo("alice/hidden", private=True)
    bob = space_hub.api("bob")
    bob.create_repo("bob/other", repo_type="space", space_sdk="gradio")
    other_secret = "bobs-secret-0d5e"
    bob.add_space_secret("bob/other", "BOB_TOKEN", other_secret)
    from huggingface_hub import CommitOperationAdd

    bob.create_commit(
        "bob/other",
        repo_type="space",
        operations=[
            CommitOperationAdd("README.md", readme().encode()),
            CommitOperationAdd("app.py", PROBE_APP.encode()),
        ],
        commit_message="other",
    )
    api.create_repo("alice/probe", repo_type="space", space_sdk="gradio")
    runtime_obj = space_hub.app.state.spaces
    wait_stage(space_hub, "bob/other", "BUILD_ERROR", "RUNNING", "RUNTIME_ERROR")
    other = runtime_obj.spaces["bob/other"]
    variables = {
        "HUB_DB": str(space_hub.data_dir / "hub.sqlite"),
        "DATA_DIR": str(space_hub.data_dir),
        "OTHER_APP": str(other.dir / "app" / "app.py"),
        "OTHER_SECRET": other_secret,
        "HOST_IP": host_ip(),
        "HUB_PORT": space_hub.url.rsplit(":", 1)[1],
    }
    for key, value in variables.items():
        api.add_space_variable("alice/probe", key, value)
    push(space_hub, "alice/probe", {"README.md": readme(), "app.py": PROBE_APP}, create=False)
    wait_stage(space_hub, "alice/probe", "RUNNING")
    return variables


def test_the_app_sees_nothing_of_the_hub_or_other_spaces(space_hub, probe_space):
    assert os.path.exists(probe_space["HUB_DB"]) and os.path.exists(probe_space["OTHER_APP"])
    with app_client(space_hub, "alice/probe") as client:
        seen = client.get("/probe").json()
    assert seen["hub_health"] == {"status": "ok"}  # the hub, through the bridge, is reachable
    assert seen["private_repo"] in (401, 404)  # as an anonymous caller: no private repo
    assert seen["read"] == {path: False for path in seen["read"]}, seen["read"]
    assert seen["write"] == {"/usr/x": False, "/etc/x": False, "/home/user/app/x": True, "/tmp/x": True}
    assert seen["connect"] == {name: False for name in seen["connect"]}, seen["connect"]
    assert not seen["other_secret_seen"] and seen["environs_read"] >= 1
    with app_client(space_hub, "bob/other") as client:
        assert "BOB_TOKEN" in client.get("/env").json()  # it is there, in the other sandbox only
    assert seen["pids"] <= 4  # its own pid namespace: bwrap's init, the launcher, the app
    if os.geteuid() == 0:
        assert seen["uid"] != 0 and seen["uid"] >= space_hub.app.state.spaces.settings.space_uid_base


def test_memory_and_process_limits_stop_the_app_not_the_hub(space_hub, probe_space):
    with app_client(space_hub, "alice/probe") as client:
        assert client.get("/hog").json() == {"hog": "MemoryError"}
        if os.geteuid() != 0:
            pytest.skip("the process limit is per space only when the hub runs as root (own uid per space)")
        bomb = client.get("/forkbomb").json()
    limit = space_hub.app.state.spaces.settings.space_max_processes
    assert 0 < bomb["children"] < limit and bomb["errno"] == 11, bomb  # EAGAIN at RLIMIT_NPROC
    assert httpx.get(f"{space_hub.url}/api/health", timeout=10).json() == {"status": "ok"}
    # the hub can still fork, and the other space runs on (its uid has its own count)
    assert wait_stage(space_hub, "bob/other", "RUNNING")["stage"] == "RUNNING"
