"""The proxy tests' upstream: echo_app.py in a subprocess (a unix socket and a loopback port), and a
`locate` whose answers the tests set per space."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cove.server.spaces.target import RUNNING, SpaceTarget

HERE = Path(__file__).parent
ROOT = HERE.parent.parent


@dataclass
class EchoApps:
    process: subprocess.Popen[str]
    uds: str
    port: int

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.process.kill()
            self.process.wait(timeout=15)
        shutil.rmtree(os.path.dirname(self.uds), ignore_errors=True)


def start_echo_apps(uds_root: str, port_root: str) -> EchoApps:
    """echo_app.py serving the GRADIO_ROOT_PATH=uds_root app on a unix socket and the port_root one on a
    free port; returns once both listen."""
    from tests.server.conftest import _free_port

    folder = tempfile.mkdtemp(prefix="cove-space-")  # short: a unix socket path has ~100 bytes
    uds = os.path.join(folder, "app.sock")
    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_ROOT_PATH": uds_root,
        "GRADIO_ANALYTICS_ENABLED": "False",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        str(HERE / "echo_app.py"),
        "--uds",
        uds,
        "--port",
        str(port),
        "--port-root",
        port_root,
    ]
    process = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, text=True, cwd=folder)
    deadline = time.monotonic() + 120  # gradio's import alone takes seconds on a busy machine
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.strip() == "ready":
            return EchoApps(process, uds, port)
        if not line and process.poll() is not None:
            break
    process.kill()
    raise RuntimeError(f"echo_app.py did not start (exit code {process.poll()})")


@dataclass
class Locator:
    """The tests' runtime: a fixed SpaceTarget per repo id, and the ids it was asked about."""

    targets: dict[str, SpaceTarget] = field(default_factory=dict)
    asked: list[str] = field(default_factory=list)

    async def __call__(self, repo_id: str) -> SpaceTarget:
        self.asked.append(repo_id)
        return self.targets.get(repo_id, SpaceTarget(RUNNING))


def echo_apps(uds_space: str, port_space: str) -> Iterator[EchoApps]:
    """A module fixture's body: the echo apps of two spaces (one on the socket, one on the port)."""
    import pytest

    pytest.importorskip("gradio")
    running = start_echo_apps(f"/spaces/{uds_space}", f"/spaces/{port_space}")
    yield running
    running.stop()


def locator_for(apps: EchoApps, *, uds: tuple[str, ...] = (), port: tuple[str, ...] = ()) -> Locator:
    """A Locator that finds the uds spaces on the apps' socket and the port spaces on their port."""
    targets = {repo_id: SpaceTarget(RUNNING, uds=apps.uds) for repo_id in uds}
    targets.update({repo_id: SpaceTarget(RUNNING, port=apps.port) for repo_id in port})
    return Locator(targets)
