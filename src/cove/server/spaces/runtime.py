"""The space runtime: builds a space when its default branch moves, runs its app in the sandbox, bridges it
to the hub, and moves it through Hugging Face's stages (BUILDING, BUILD_ERROR, RUNNING, RUNTIME_ERROR,
PAUSED, SLEEPING, CONFIG_ERROR, NO_APP_FILE).

Every slow step (checkout, venv, pip, starting the app, stopping it) runs in a worker thread; the event
loop only answers `locate` from memory and relays the apps' outbound connections to the hub. Each space has
a generation number: a push, restart, pause or sleep bumps it, and a thread that finds its generation stale
stops what it was doing, so a newer build always wins over an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from cove.errors import RepoNotFoundError
from cove.server.settings import Settings
from cove.server.spaces import target as stages
from cove.server.spaces.build import Builder, BuildError, plan_build
from cove.server.spaces.config import SpaceConfig, SpaceConfigError, parse_config
from cove.server.spaces.launcher import forward_to
from cove.server.spaces.logbook import LogBook
from cove.server.spaces.sandbox import (
    APP_DIR,
    RUN_DIR,
    VENV_DIR,
    Sandbox,
    as_root,
    hub_import_paths,
    python_prefixes,
    sandbox_problem,
)
from cove.server.spaces.target import SpaceTarget
from cove.store import DEFAULT_BRANCH, Account, RepoRow, RepoStore, SpaceSettingRow

log = logging.getLogger("cove.server.spaces")

APP_PORT = 7860
HUB_PORT_INSIDE = 8000  # when the hub's own port is privileged (or 7860)
MAX_CRASH_RESTARTS = 5
_ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# names the runtime sets itself: a variable or secret cannot replace them
RESERVED_ENV = {
    "PATH",
    "HOME",
    "HF_ENDPOINT",
    "COVE_ENDPOINT",
    "SPACE_ID",
    "SPACE_AUTHOR_NAME",
    "SPACE_REPO_NAME",
}


@dataclass
class Space:
    repo_id: str
    row_id: int
    dir: Path
    build_log: LogBook
    run_log: LogBook
    stage: str = stages.SLEEPING
    message: str = ""
    commit: str | None = None  # the commit the app folder holds
    config: SpaceConfig | None = None
    proc: subprocess.Popen[bytes] | None = None
    generation: int = 0
    last_visit: float = field(default_factory=time.monotonic)
    crashes: int = 0
    paused: bool = False
    sleep_s: float | None = None  # the owner's sleep time (None: the server's)
    relay: asyncio.AbstractServer | None = None
    building: bool = False  # the build log is still growing
    lock: threading.RLock = field(default_factory=threading.RLock)

    @property
    def uds(self) -> str:
        return str(self.dir / "run" / "app.sock")

    def target(self) -> SpaceTarget:
        if self.stage == stages.RUNNING:
            return SpaceTarget(stages.RUNNING, uds=self.uds, message=self.message)
        return SpaceTarget(self.stage, message=self.message)


class SpaceRuntime:
    def __init__(self, settings: Settings, store: RepoStore) -> None:
        self.settings = settings
        self.store = store
        self.root = settings.resolved_spaces_dir
        self.spaces: dict[str, Space] = {}
        self._lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.hub_address: tuple[str, int] | None = None
        self.degraded: list[str] = []
        if not as_root():
            self.degraded.append(
                "the hub does not run as root: spaces share its uid, so the process limit is not applied"
            )
        self._sleeper: threading.Thread | None = None
        self._closing = threading.Event()
        if settings.space_hub_url:
            match = re.match(r"^https?://([^/:]+):(\d+)", settings.space_hub_url)
            if match:
                self.hub_address = (match.group(1), int(match.group(2)))

    # --- the app's lifetime --------------------------------------------------------------------

    def started(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._sleeper = threading.Thread(target=self._sleep_idle, name="cove-space-sleeper", daemon=True)
        self._sleeper.start()

    def shutdown(self) -> None:
        self._closing.set()
        with self._lock:
            spaces = list(self.spaces.values())
        for space in spaces:
            with space.lock:
                space.generation += 1
                self._stop_process(space)

    def note_server(self, server: tuple[str, int] | None) -> None:
        """The address the hub's requests arrive on: the relay's way back to the hub."""
        if self.hub_address is None and server and server[1]:
            host = server[0] if server[0] not in ("0.0.0.0", "::", "") else "127.0.0.1"
            self.hub_address = (host, int(server[1]))

    # --- what the proxy and the API ask ----------------------------------------------------------

    async def locate(self, repo_id: str) -> SpaceTarget:
        space = self.spaces.get(repo_id)
        if space is not None and space.stage == stages.RUNNING:
            space.last_visit = time.monotonic()
            return space.target()
        return await asyncio.to_thread(self._locate_slow, repo_id)

    def _locate_slow(self, repo_id: str) -> SpaceTarget:
        space = self.get(repo_id)
        if space is None:
            return SpaceTarget(stages.NO_APP_FILE, message=f"There is no space {repo_id!r} on this hub.")
        space.last_visit = time.monotonic()
        with space.lock:
            if space.stage == stages.SLEEPING and not space.paused:
                self._launch(space, rebuild=space.commit is None, message="Waking the space up")
        return space.target()

    def get(self, repo_id: str) -> Space | None:
        """The space's state, read from the database the first time it is asked for."""
        space = self.spaces.get(repo_id)
        if space is not None:
            return space
        with self.store.session() as s:
            try:
                repo = self.store.get_repo(s, "space", repo_id)
            except FileNotFoundError:
                return None
            settings = runtime_settings(s, repo.id)
        with self._lock:
            space = self.spaces.get(repo.repo_id)
            if space is None:
                folder = self.root / str(repo.id)
                space = Space(
                    repo_id=repo.repo_id,
                    row_id=repo.id,
                    dir=folder,
                    build_log=LogBook(folder / "build.log"),
                    run_log=LogBook(folder / "run.log"),
                    paused=settings.get("paused") == "true",
                    sleep_s=float(settings["sleep_s"]) if settings.get("sleep_s") else None,
                )
                if space.paused:
                    space.stage, space.message = stages.PAUSED, "Paused by its owner: restart it to run it."
                self.spaces[repo.repo_id] = space
        return space

    def status(self, repo_id: str) -> dict[str, Any]:
        """The runtime answer (GET /api/spaces/{id}/runtime), in Hugging Face's shape."""
        space = self._existing(repo_id)
        return {
            "stage": space.stage,
            "hardware": {
                "current": "cpu-basic" if space.stage == stages.RUNNING else None,
                "requested": "cpu-basic",
            },
            "storage": None,
            "gcTimeout": int(self.sleep_time(space)),
            "replicas": {"current": 1 if space.stage == stages.RUNNING else 0, "requested": 1},
            "devMode": False,
            "domains": [{"domain": self.host_name(repo_id), "stage": "READY"}],
            "errorMessage": space.message if space.stage in ERROR_STAGES else None,
            "message": space.message,
            "sdk": space.config.sdk if space.config else None,
            "sandbox": "; ".join(self.degraded) or "bubblewrap, own uid, no network but the hub",
        }

    def info_fields(self, repo_id: str, base_url: str) -> dict[str, Any]:
        """space_info's host, subdomain, runtime and sdk."""
        runtime = self.status(repo_id)
        space = self._existing(repo_id)
        out = {
            "host": f"{base_url.rstrip('/')}/spaces/{repo_id}/",
            "subdomain": self.host_name(repo_id),
            "runtime": runtime,
        }
        if space.config is not None:
            out["sdk"] = space.config.sdk
        return out

    def host_name(self, repo_id: str) -> str:
        return repo_id.replace("/", "-").replace("_", "-").replace(".", "-").lower()

    def sleep_time(self, space: Space) -> float:
        return space.sleep_s if space.sleep_s is not None else self.settings.space_sleep_s

    # --- what pushes and owners do ------------------------------------------------------------

    def pushed(self, repo: RepoRow, branch: str, commit_id: str) -> None:
        """The store's hook: a commit moved a branch. A space's default branch starts a build."""
        if repo.type != "space" or branch != DEFAULT_BRANCH or self._closing.is_set():
            return
        space = self.get(repo.repo_id)
        if space is None:
            return
        with space.lock:
            if space.paused:
                space.commit = None  # the next restart builds the new commit
                return
            space.crashes = 0
            self._launch(space, rebuild=True, message="Building the pushed commit")

    def restart(self, repo_id: str, *, factory: bool = False) -> None:
        space = self._existing(repo_id)
        with space.lock:
            space.paused = False
            space.crashes = 0
            self._save_setting(space, "paused", "")
            if factory:
                self._stop_process(space)
                shutil.rmtree(space.dir / "venv", ignore_errors=True)
            self._launch(space, rebuild=True, message="Restarting" + (" from scratch" if factory else ""))

    def pause(self, repo_id: str) -> None:
        space = self._existing(repo_id)
        with space.lock:
            space.paused = True
            self._save_setting(space, "paused", "true")
            self._halt(space, stages.PAUSED, "Paused by its owner: restart it to run it.")

    def set_sleep_time(self, repo_id: str, seconds: int) -> None:
        space = self._existing(repo_id)
        space.sleep_s = float(seconds) if seconds > 0 else None
        self._save_setting(space, "sleep_s", str(seconds) if seconds > 0 else "")

    def gone(self, repo_type: str, repo_id: str) -> None:
        """The store's hook: the repo was deleted or moved away from repo_id. Its app stops and its folder
        goes (a moved space builds again under its new id on its next visit)."""
        if repo_type != "space":
            return
        with self._lock:
            space = self.spaces.pop(repo_id, None)
        if space is not None:
            with space.lock:
                self._halt(space, stages.SLEEPING, "")
            shutil.rmtree(space.dir, ignore_errors=True)

    def _existing(self, repo_id: str) -> Space:
        space = self.get(repo_id)
        if space is None:
            raise RepoNotFoundError(f"There is no space {repo_id!r} on this hub.")
        return space

    def _save_setting(self, space: Space, key: str, value: str) -> None:
        with self.store.session() as s:
            row = s.get(SpaceSettingRow, (space.row_id, "runtime", key))
            if value:
                if row is None:
                    s.add(SpaceSettingRow(repo_id=space.row_id, kind="runtime", key=key, value=value))
                else:
                    row.value = value
            elif row is not None:
                s.delete(row)
            s.commit()

    # --- stages --------------------------------------------------------------------------------

    def _launch(self, space: Space, *, rebuild: bool, message: str) -> None:
        """Start (in a thread) a build, when asked or when nothing is built yet, then the app."""
        space.generation += 1
        gen = space.generation
        refused = self._refusal(space)
        if refused:
            self._stop_process(space)
            space.stage, space.message = stages.PAUSED, refused
            return
        space.stage, space.message = stages.BUILDING, message
        thread = threading.Thread(
            target=self._build_and_start,
            args=(space, gen, rebuild),
            name=f"cove-space-{space.row_id}",
            daemon=True,
        )
        thread.start()

    def _refusal(self, space: Space) -> str:
        mode = self.settings.spaces.lower()
        if mode == "off":
            return "This hub does not run spaces (COVE_SPACES=off)."
        if mode == "admins":
            owner = space.repo_id.split("/")[0]
            with self.store.session() as s:
                account = s.scalar(select(Account).where(Account.name == owner))
            if account is None or not account.is_admin:
                return "This hub runs only site admins' spaces (COVE_SPACES=admins)."
        elif mode != "on":
            return f"COVE_SPACES={self.settings.spaces!r} is not one of on, off, admins: no space runs."
        problem = sandbox_problem()
        if problem:
            return f"Spaces cannot run sandboxed on this hub: {problem}."
        return ""

    def _halt(self, space: Space, stage: str, message: str) -> None:
        space.generation += 1
        self._stop_process(space)
        space.stage, space.message = stage, message

    def _current(self, space: Space, gen: int) -> bool:
        return space.generation == gen and not self._closing.is_set()

    def _set(self, space: Space, gen: int, stage: str, message: str) -> bool:
        with space.lock:
            if not self._current(space, gen):
                return False
            space.stage, space.message = stage, message
            return True

    def _build_and_start(self, space: Space, gen: int, rebuild: bool) -> None:
        try:
            with space.lock:
                if not self._current(space, gen):
                    return
                self._stop_process(space)
            if rebuild or space.config is None or not (space.dir / "venv").exists():
                space.build_log.reset()
                space.building = True
                try:
                    if not self._build(space, gen):
                        return
                finally:
                    space.building = False
            self._start(space, gen)
        except Exception as exc:  # a bug here must show as the space's error, never kill the thread silently
            log.exception("space %s failed", space.repo_id)
            space.build_log.write(f"Internal error: {exc!r}")
            self._set(space, gen, stages.BUILD_ERROR, f"Internal error while building: {exc}")

    def _build(self, space: Space, gen: int) -> bool:
        blog = space.build_log
        with self.store.session() as s:
            repo = self.store.get_repo(s, "space", space.repo_id)
            commit = self.store.resolve(s, repo, DEFAULT_BRANCH)
            tree = self.store.tree(s, commit)
            card = self.store.card_of(tree["README.md"]) if "README.md" in tree else {}
        blog.write(f"Building {space.repo_id} at {commit[:12]}")
        try:
            config = parse_config(card if isinstance(card, dict) else {}, set(tree))
        except SpaceConfigError as exc:
            blog.write(f"Configuration error: {exc}")
            stage = stages.NO_APP_FILE if "not in the repo" in str(exc) else stages.CONFIG_ERROR
            self._set(space, gen, stage, str(exc))
            return False
        space.config = config
        app_dir = space.dir / "app"
        shutil.rmtree(app_dir, ignore_errors=True)
        app_dir.mkdir(parents=True)
        for path, entry in tree.items():
            dest = app_dir / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            with self.store.blobs.open(entry.sha256) as src, dest.open("wb") as out:
                shutil.copyfileobj(src, out)
        blog.write(f"Checked out {len(tree)} files")
        try:
            req = (app_dir / "requirements.txt").read_text() if "requirements.txt" in tree else None
            plan = plan_build(config, req)
            builder = Builder(
                blog,
                lambda **kw: self._sandbox(space, **kw),
                wheels=self.root / "wheels",
                import_paths=self._import_paths(),
                timeout=self.settings.space_build_timeout_s,
                cancelled=lambda: not self._current(space, gen),
            )
            builder.venv(space.dir / "venv", plan)
            if config.preload:
                self._preload(space, config, app_dir)
            builder.chown(app_dir)
        except BuildError as exc:
            blog.write(f"Build failed: {exc}")
            self._set(space, gen, stages.BUILD_ERROR, f"{exc}\n{blog.tail(15)}")
            return False
        space.commit = commit
        blog.write("Build done")
        return True

    def _preload(self, space: Space, config: SpaceConfig, app_dir: Path) -> None:
        """preload_from_hub: files of this hub's repos into the app's Hugging Face cache, laid out as
        huggingface_hub's cache (refs/main, snapshots/<commit>/<file>), so offline loads find them."""
        owner = space.repo_id.split("/")[0]
        cache = app_dir / ".cache" / "huggingface" / "hub"
        with self.store.session() as s:
            for item in config.preload:
                repo = None
                for kind in ("model", "dataset"):
                    with contextlib.suppress(FileNotFoundError):
                        repo = self.store.get_repo(s, kind, item.repo_id)
                        break
                if repo is None or (repo.private and repo.namespace != owner):
                    raise BuildError(
                        f"preload_from_hub: no repo {item.repo_id!r} this space may read on this hub."
                    )
                commit = self.store.resolve(s, repo, item.revision)
                tree = self.store.tree(s, commit)
                names = item.files or tuple(tree)
                folder = cache / f"{repo.type}s--{repo.repo_id.replace('/', '--')}"
                snapshot = folder / "snapshots" / commit
                for name in names:
                    if name not in tree:
                        raise BuildError(f"preload_from_hub: {item.repo_id!r} has no file {name!r}.")
                    dest = snapshot / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with self.store.blobs.open(tree[name].sha256) as src, dest.open("wb") as out:
                        shutil.copyfileobj(src, out)
                (folder / "refs").mkdir(parents=True, exist_ok=True)
                (folder / "refs" / (item.revision or "main")).write_text(commit)
                space.build_log.write(f"Preloaded {len(names)} files of {item.repo_id}")

    def _import_paths(self) -> list[Path]:
        private = [self.settings.data_dir.expanduser(), self.root]
        return hub_import_paths(private)

    def uid_of(self, space: Space) -> int | None:
        return self.settings.space_uid_base + space.row_id % 60000 if as_root() else None

    def _sandbox(
        self,
        space: Space,
        *,
        network: bool,
        venv: Path | None = None,
        venv_writable: bool = False,
        wheels: Path | None = None,
    ) -> Sandbox:
        run = space.dir / "run"
        run.mkdir(parents=True, exist_ok=True)
        uid = self.uid_of(space)
        if uid is not None:
            os.chown(run, uid, uid)
        limits = {
            "RLIMIT_AS": self.settings.space_memory_mb * 1024**2,
            "RLIMIT_CPU": self.settings.space_cpu_seconds,
        }
        if uid is not None:
            limits["RLIMIT_NPROC"] = self.settings.space_max_processes
        return Sandbox(
            app_dir=space.dir / "app",
            run_dir=run,
            etc_dir=space.dir / "etc",
            read_only=[*python_prefixes(), *self._import_paths()],
            venv=venv,
            venv_writable=venv_writable,
            wheels=wheels,
            network=network,
            uid=uid,
            limits=limits,
        )

    def _app_env(self, space: Space, hub_port: int) -> dict[str, str]:
        owner, name = space.repo_id.split("/")
        endpoint = f"http://127.0.0.1:{hub_port}"
        env: dict[str, str] = {}
        with self.store.session() as s:
            rows = s.scalars(
                select(SpaceSettingRow).where(
                    SpaceSettingRow.repo_id == space.row_id, SpaceSettingRow.kind.in_(("variable", "secret"))
                )
            ).all()
            for row in sorted(rows, key=lambda r: r.kind != "variable"):  # a secret wins over a variable
                env[row.key] = row.value
        venv_bin = f"{VENV_DIR}/bin"
        env.update(
            {
                "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
                "HOME": "/home/user",
                "LANG": "C.UTF-8",
                "PYTHONUNBUFFERED": "1",
                "TMPDIR": "/tmp",
                "HF_ENDPOINT": endpoint,
                "COVE_ENDPOINT": endpoint,
                "HF_HOME": f"{APP_DIR}/.cache/huggingface",
                "COVE_HOME": f"{APP_DIR}/.cache/cove",
                "COVE_DATA_DIR": "/home/user/.cove",
                "SPACE_ID": space.repo_id,
                "SPACE_AUTHOR_NAME": owner,
                "SPACE_REPO_NAME": name,
                "GRADIO_ROOT_PATH": f"/spaces/{space.repo_id}",
                "GRADIO_SERVER_NAME": "127.0.0.1",
                "GRADIO_SERVER_PORT": str(APP_PORT),
                "GRADIO_ANALYTICS_ENABLED": "False",
                "GRADIO_TEMP_DIR": "/tmp/gradio",
                "MPLCONFIGDIR": "/tmp/matplotlib",
                "HF_HUB_DISABLE_TELEMETRY": "1",
            }
        )
        return env

    def _make_room(self, space: Space) -> None:
        """COVE_MAX_RUNNING_SPACES: put the least recently visited running spaces to sleep."""
        while True:
            with self._lock:
                running = [
                    other
                    for other in self.spaces.values()
                    if other is not space and other.proc is not None and other.proc.poll() is None
                ]
            if len(running) < max(1, self.settings.max_running_spaces):
                return
            oldest = min(running, key=lambda other: other.last_visit)
            with oldest.lock:
                oldest.run_log.write("Sleeping: another space needed its slot (COVE_MAX_RUNNING_SPACES).")
                self._halt(
                    oldest, stages.SLEEPING, "Asleep to make room for another space; wakes on the next visit."
                )

    def _start(self, space: Space, gen: int) -> None:
        config = space.config
        assert config is not None
        self._make_room(space)
        hub = self._wait_hub_address()
        if hub is None:
            self._set(
                space, gen, stages.RUNTIME_ERROR, "The hub's own address is unknown: set COVE_SPACE_HUB_URL."
            )
            return
        with space.lock:
            if not self._current(space, gen):
                return
            space.stage, space.message = stages.BUILDING, "Starting the app"
            space.run_log.reset()
            run = space.dir / "run"
            outbound = run / "hub.sock"
            self._start_relay(space, outbound, hub)
            python = f"{VENV_DIR}/bin/python"
            if config.sdk == "static":
                folder = str(Path(APP_DIR) / Path(config.app_file).parent)
                command = [
                    python,
                    "-m",
                    "http.server",
                    str(APP_PORT),
                    "--bind",
                    "127.0.0.1",
                    "--directory",
                    folder,
                ]
            else:
                command = [python, config.app_file]
            box = self._sandbox(space, network=False, venv=space.dir / "venv")
            # the hub's port as the app sees it: the same number, unless the space's uid could not bind it
            inside_port = hub[1] if 1024 <= hub[1] != APP_PORT else HUB_PORT_INSIDE
            argv = box.argv(
                "serve",
                command,
                self._app_env(space, inside_port),
                inbound_socket=f"{RUN_DIR}/app.sock",
                outbound_socket=f"{RUN_DIR}/hub.sock",
                app_port=APP_PORT,
                hub_port=inside_port,
            )
            with contextlib.suppress(FileNotFoundError):
                os.unlink(space.uds)
            space.run_log.write(f"Starting {' '.join(command[1:])}")
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                env={"PATH": "/usr/bin:/bin"},
                start_new_session=True,
            )
            space.proc = proc
        threading.Thread(target=self._pump_log, args=(space, proc), daemon=True).start()
        deadline = time.monotonic() + self.settings.space_start_timeout_s
        while time.monotonic() < deadline:
            if not self._current(space, gen):
                return
            if proc.poll() is not None:
                break
            if probe(space.uds):
                if self._set(space, gen, stages.RUNNING, ""):
                    space.last_visit = time.monotonic()
                    space.run_log.write("The app is running")
                break
            time.sleep(0.25)
        else:
            space.run_log.write(
                f"The app did not answer on port {APP_PORT} within {self.settings.space_start_timeout_s:.0f} s"
            )
            with space.lock:
                if self._current(space, gen):
                    self._stop_process(space)
                    space.stage = stages.RUNTIME_ERROR
                    space.message = (
                        f"The app never listened on 127.0.0.1:{APP_PORT} (GRADIO_SERVER_PORT) within "
                        f"{self.settings.space_start_timeout_s:.0f} s.\n{space.run_log.tail(15)}"
                    )
            return
        code = proc.wait()
        self._crashed(space, gen, code)

    def _crashed(self, space: Space, gen: int, code: int) -> None:
        time.sleep(0.2)  # the log pump's last lines
        with space.lock:
            if not self._current(space, gen):
                return
            what = f"killed by signal {code - 128}" if code > 128 else f"exited with status {code}"
            space.run_log.write(f"The app {what}")
            space.proc = None
            space.crashes += 1
            space.stage = stages.RUNTIME_ERROR
            tail = space.run_log.tail(20)
            if space.crashes > MAX_CRASH_RESTARTS:
                space.message = f"The app {what}; it crashed {space.crashes} times, so it is not restarted: push a fix or restart it.\n{tail}"
                return
            delay = min(60.0, 2.0 ** (space.crashes - 1))
            space.message = f"The app {what}; restarting in {delay:.0f} s.\n{tail}"

        def again() -> None:
            if self._closing.wait(delay):
                return
            with space.lock:
                if self._current(space, gen):
                    space.generation += 1
                    next_gen = space.generation
                else:
                    return
            self._build_and_start(space, next_gen, False)

        threading.Thread(target=again, daemon=True).start()

    def _pump_log(self, space: Space, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            space.run_log.write(raw.decode("utf-8", "replace"))

    def _wait_hub_address(self) -> tuple[str, int] | None:
        deadline = time.monotonic() + 30
        while self.hub_address is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.hub_address

    def _stop_process(self, space: Space) -> None:
        proc, space.proc = space.proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        relay, space.relay = space.relay, None
        if relay is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(relay.close)

    def _sleep_idle(self) -> None:
        while not self._closing.wait(1.0):
            now = time.monotonic()
            with self._lock:
                spaces = list(self.spaces.values())
            for space in spaces:
                if space.stage == stages.RUNNING and now - space.last_visit > self.sleep_time(space):
                    with space.lock:
                        if space.stage == stages.RUNNING:
                            space.run_log.write("Sleeping: no visitor for a while; wakes on the next visit.")
                            self._halt(
                                space, stages.SLEEPING, "Asleep after no visits; wakes on the next visit."
                            )

    # --- the bridge back to the hub ----------------------------------------------------------

    def _start_relay(self, space: Space, path: Path, hub: tuple[str, int]) -> None:
        """run/hub.sock -> the hub's HTTP port: the only connection a space's app can open."""
        assert self.loop is not None
        with contextlib.suppress(FileNotFoundError):
            path.unlink()

        handle = forward_to(lambda: asyncio.open_connection(*hub))

        async def open_server() -> asyncio.AbstractServer:
            server = await asyncio.start_unix_server(handle, path=str(path))
            os.chmod(path, 0o666)  # the space's uid connects; the folder around it is the space's alone
            return server

        space.relay = asyncio.run_coroutine_threadsafe(open_server(), self.loop).result(timeout=10)


ERROR_STAGES = (stages.BUILD_ERROR, stages.RUNTIME_ERROR, stages.CONFIG_ERROR, stages.NO_APP_FILE)


def probe(uds: str) -> bool:
    """Whether an HTTP server answers behind the space's inbound socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(3)
            sock.connect(uds)
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            return sock.recv(5) == b"HTTP/"
    except OSError:
        return False


def runtime_settings(s: Any, row_id: int) -> dict[str, str]:
    rows = s.scalars(
        select(SpaceSettingRow).where(SpaceSettingRow.repo_id == row_id, SpaceSettingRow.kind == "runtime")
    ).all()
    return {row.key: row.value for row in rows}


def check_env_key(key: str) -> str:
    if not _ENV_KEY.match(key or "") or key.upper() in RESERVED_ENV:
        raise ValueError(
            f"Invalid key {key!r}: use letters, digits and '_', not starting with a digit, at most 128 "
            f"characters, and none of {', '.join(sorted(RESERVED_ENV))}."
        )
    return key
