"""Building a space: its files checked out of the store, its own virtualenv, gradio at the asked
sdk_version and requirements.txt from the package registries (through a wheelhouse shared by every
space, so a rebuild of unchanged requirements needs no network), preload_from_hub files from this hub.

When the asked sdk_version is the gradio the hub itself runs (or none is asked) and the python_version is
the hub's, the venv is layered over the hub's site-packages (read-only, through a .pth file) and nothing is
downloaded. pip runs inside the sandbox, as the space's uid: a requirement's setup.py is the space's code.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cove.server.spaces.config import SpaceConfig, SpaceConfigError, parse_requirements
from cove.server.spaces.logbook import LogBook
from cove.server.spaces.sandbox import VENV_DIR, WHEELS_DIR, Sandbox


class BuildError(RuntimeError):
    """The build failed: the message is the reason shown with BUILD_ERROR (the log has the details)."""


@dataclass
class BuildPlan:
    python: str  # the base interpreter the venv is made from
    layered: bool  # over the hub's site-packages
    packages: list[str]  # what pip installs (gradio==X when another version is asked, then requirements)
    key: str  # a venv with this key is reused as it is


def hub_gradio_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gradio")
    except PackageNotFoundError:
        return None


def find_python(wanted: str | None) -> str:
    """The interpreter for python_version (the hub's own when it matches or none is asked)."""
    base = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    ours = f"{sys.version_info.major}.{sys.version_info.minor}"
    if wanted is None or wanted in (ours, ".".join(map(str, sys.version_info[:3]))):
        return base
    short = ".".join(wanted.split(".")[:2])
    candidates = [shutil.which(f"python{short}")]
    candidates += sorted(
        glob.glob(str(Path(sys.base_prefix).parent / f"{wanted}*" / "bin" / f"python{short}"))
    )
    for found in candidates:
        if found and os.access(found, os.X_OK):
            return os.path.realpath(found)
    raise BuildError(
        f"python_version {wanted} is not available on this hub (it has Python {ours}): "
        f"set python_version to {ours} or remove it from README.md."
    )


def plan_build(config: SpaceConfig, requirements_text: str | None) -> BuildPlan:
    try:
        requirements = parse_requirements(requirements_text or "")
    except SpaceConfigError as exc:
        raise BuildError(str(exc)) from None
    python = find_python(config.python_version)
    same_python = python == os.path.realpath(getattr(sys, "_base_executable", sys.executable))
    packages = []
    if config.sdk == "gradio":
        hub_gradio = hub_gradio_version()
        if config.sdk_version not in (None, hub_gradio) or not same_python or hub_gradio is None:
            packages.append(f"gradio=={config.sdk_version}" if config.sdk_version else "gradio")
    packages += requirements
    key = hashlib.sha256(json.dumps([python, same_python, packages]).encode()).hexdigest()[:16]
    return BuildPlan(python=python, layered=same_python, packages=packages, key=key)


@dataclass
class Builder:
    """Runs one space's build steps, writing what happens to its build log."""

    log: LogBook
    sandbox: Callable[..., Sandbox]  # the space's sandbox, given network=, venv=, ...
    wheels: Path  # the shared wheelhouse
    import_paths: list[Path]  # the hub's, for a layered venv's .pth
    timeout: float
    cancelled: Callable[[], bool]  # a newer build replaced this one

    def venv(self, venv: Path, plan: BuildPlan) -> None:
        marker = venv / "cove-build.json"
        if marker.exists() and json.loads(marker.read_text()).get("key") == plan.key:
            self.log.write(f"Reusing the environment {plan.key} (nothing it depends on changed).")
            return
        shutil.rmtree(venv, ignore_errors=True)
        self.log.write(
            f"Creating a virtualenv with {plan.python}" + (" over the hub's packages" if plan.layered else "")
        )
        args = [plan.python, "-m", "venv", str(venv)]
        if plan.layered:
            args.insert(3, "--without-pip")
        self.run(args, sandboxed=False, network=False, what="creating the virtualenv")
        if plan.layered:
            site = next(venv.glob("lib/python*/site-packages"))
            # a site-packages folder through addsitedir, so its own .pth files (editable installs) count too
            lines = [
                f"import site; site.addsitedir({str(p)!r})\n" if p.name.endswith("-packages") else f"{p}\n"
                for p in self.import_paths
            ]
            (site / "cove-hub.pth").write_text("".join(lines))
        if plan.packages:
            self.chown(venv)
            self.pip(venv, plan.packages)
        marker.write_text(json.dumps({"key": plan.key, "packages": plan.packages}))
        os.chmod(marker, 0o644)

    def chown(self, path: Path) -> None:
        """The sandboxed pip runs as the space's uid: it must own what it writes into."""
        uid = self.sandbox(network=False).uid
        if uid is None or os.geteuid() != 0:
            return
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.lchown(os.path.join(root, name), uid, uid)
        os.lchown(path, uid, uid)

    def pip(self, venv: Path, packages: list[str]) -> None:
        """Install from the wheelhouse inside the sandbox, with no network. What is missing there is fetched
        first by the hub itself, wheels only (--only-binary: fetching runs no package code), so nothing a
        space builds lands in the wheelhouse that other spaces install from."""
        self.wheels.mkdir(parents=True, exist_ok=True)
        common = ["-m", "pip", "--disable-pip-version-check", "--no-input"]
        quiet = ["--progress-bar", "off"]
        install = [
            f"{VENV_DIR}/bin/python",
            *common,
            "install",
            *quiet,
            "--no-index",
            "--find-links",
            WHEELS_DIR,
        ]
        install += packages
        self.log.write(f"Installing {' '.join(packages)} (from the shared wheelhouse first)")
        if self.run(install, network=False, venv=venv, check=False) == 0:
            return
        self.log.write("Not all of it is in the wheelhouse: fetching wheels from the package index")
        fetch = [
            str(venv / "bin" / "python"),
            *common,
            "download",
            *quiet,
            "--only-binary=:all:",
            "--dest",
            str(self.wheels),
            *packages,
        ]
        self.run(fetch, sandboxed=False, network=True, what="pip download")
        self.run(install, network=False, venv=venv, what="pip install")

    def run(
        self,
        argv: list[str],
        *,
        sandboxed: bool = True,
        network: bool,
        venv: Path | None = None,
        check: bool = True,
        what: str = "the build step",
    ) -> int:
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": "/home/user",
            "LANG": "C.UTF-8",
            "TMPDIR": "/tmp",
        }
        env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") and k != "PIP_TARGET"})
        if sandboxed:
            box = self.sandbox(network=network, venv=venv, venv_writable=True, wheels=self.wheels)
            argv = box.argv("exec", argv, env)
            env = {"PATH": env["PATH"]}
        proc = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, start_new_session=True, text=True
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + self.timeout
        try:
            for line in proc.stdout:
                self.log.write(line)
                if time.monotonic() > deadline or self.cancelled():
                    raise BuildError(
                        "The build was stopped"
                        + (
                            ": a newer build replaced it."
                            if self.cancelled()
                            else f" after {self.timeout:.0f} s."
                        )
                    )
            code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise BuildError(f"The build took longer than {self.timeout:.0f} s and was stopped.") from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        if check and code != 0:
            raise BuildError(f"{what} failed with exit status {code}: see the build log.")
        return code
