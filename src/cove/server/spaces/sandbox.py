"""The bubblewrap command line a space's build and app run under (docs/decisions/space-sandbox.md).

A fresh root with read-only system folders (/usr, the Python installation, the hub's site-packages a
layered venv reads), a handful of /etc files (never shadow, gshadow or the hub's own files), /proc, /dev,
size-limited tmpfs at /tmp and /home/user, the space's app folder writable at /home/user/app, its run folder
(the bridge's unix sockets) writable, and nothing else: no data dir, database, blobs or other space. The app
gets no network namespace but its own loopback; builds share the host's network to reach the package
registries. As root, the trusted launcher inside drops to the space's own uid (so RLIMIT_NPROC counts that
space alone) before the space's code runs; bwrap sets no_new_privs, so setuid binaries cannot climb back.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

LAUNCHER = Path(__file__).with_name("launcher.py")
SANDBOX_LAUNCHER = "/opt/cove/launcher.py"
APP_DIR = "/home/user/app"
RUN_DIR = "/run/space"
VENV_DIR = "/opt/venv"  # the space's venv, wherever it lies on the host (builds write it, apps read it)
WHEELS_DIR = "/opt/wheels"  # the shared wheelhouse, read-only
# what programs read from /etc; everything else there stays out of view
ETC_FILES = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "host.conf",
    "hosts",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "pip.conf",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)


def bwrap_path() -> str | None:
    return shutil.which("bwrap") or ("/usr/bin/bwrap" if os.path.exists("/usr/bin/bwrap") else None)


def as_root() -> bool:
    return os.geteuid() == 0


def system_binds() -> list[str]:
    """/usr read-only, and /bin, /lib*, /sbin as the host has them (links into /usr, or folders)."""
    args = ["--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib64", "sbin", "lib32", "libx32"):
        path = Path("/") / link
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{link}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{link}"]
    return args


@functools.cache
def sandbox_problem() -> str | None:
    """Why bubblewrap cannot build a sandbox on this machine (None: it can): missing, or namespaces refused
    (a container without user namespaces, say). Tried once per process with the namespaces spaces use."""
    bwrap = bwrap_path()
    if bwrap is None:
        return "bubblewrap (bwrap) is not installed: scripts/setup.sh installs Debian's package"
    flags = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    if not as_root():
        flags.append("--unshare-user")
    argv = [bwrap, *system_binds(), *flags, "/usr/bin/true"]
    try:
        run = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap could not run: {exc}"
    if run.returncode != 0:
        return f"bubblewrap cannot create a sandbox here: {run.stderr.strip()[-300:]}"
    return None


@dataclass
class Sandbox:
    """One sandboxed command: where the space's folders are and what it may do."""

    app_dir: Path  # writable, at /home/user/app
    run_dir: Path  # writable, at /run/space
    etc_dir: Path  # the space's own passwd/group
    read_only: list[Path] = field(default_factory=list)  # bound at the same path, read-only
    venv: Path | None = None  # at /opt/venv
    venv_writable: bool = False  # builds install into it
    wheels: Path | None = None  # at /opt/wheels, read-only
    network: bool = False
    uid: int | None = None
    limits: dict[str, int] = field(default_factory=dict)
    tmp_bytes: int = 512 * 1024**2

    def write_identity(self) -> None:
        """passwd/group naming the space's user, so getpass/pwd lookups inside work."""
        uid = self.uid if self.uid is not None else os.getuid()
        self.etc_dir.mkdir(parents=True, exist_ok=True)
        (self.etc_dir / "passwd").write_text(
            f"root:x:0:0:root:/root:/usr/sbin/nologin\nuser:x:{uid}:{uid}:space:/home/user:/bin/sh\n"
        )
        (self.etc_dir / "group").write_text(f"root:x:0:\nuser:x:{uid}:\n")

    def argv(self, mode: str, command: list[str], env: dict[str, str], **serve: object) -> list[str]:
        """bwrap + the launcher running command (mode "exec") or serving the app (mode "serve")."""
        bwrap = bwrap_path()
        if bwrap is None:
            raise RuntimeError(
                "bubblewrap (bwrap) is not installed: scripts/setup.sh installs Debian's package"
            )
        self.write_identity()
        args = [bwrap, "--die-with-parent", "--new-session", "--proc", "/proc", "--dev", "/dev"]
        if as_root():
            # no user namespace: the launcher keeps CAP_SETUID/SETGID only, to become the space's uid
            args += ["--unshare-ipc", "--unshare-pid", "--unshare-uts", "--unshare-cgroup-try"]
            args += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
        else:
            args += [
                "--unshare-user",
                "--unshare-ipc",
                "--unshare-pid",
                "--unshare-uts",
                "--unshare-cgroup-try",
            ]
        if not self.network:
            args.append("--unshare-net")
        args += system_binds()
        args += ["--perms", "0755", "--dir", "/etc"]
        for name in ETC_FILES:
            if (Path("/etc") / name).exists():
                args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
        args += ["--ro-bind", str(self.etc_dir / "passwd"), "/etc/passwd"]
        args += ["--ro-bind", str(self.etc_dir / "group"), "/etc/group"]
        # /tmp first: the binds below may lie under the host's /tmp (a data dir there), and a tmpfs mounted
        # after them would hide them
        args += ["--perms", "1777", "--size", str(self.tmp_bytes), "--tmpfs", "/tmp"]
        args += ["--perms", "1777", "--size", str(self.tmp_bytes // 4), "--tmpfs", "/dev/shm"]  # semaphores
        made = {Path("/tmp"), Path("/etc"), Path("/usr"), Path("/proc"), Path("/dev")}
        binds = [("--ro-bind", p) for p in _outermost(self.read_only) if not _under_system(p) and p.exists()]
        for flag, path in binds:
            args += _parents(path, made)
            args += [flag, str(path), str(path)]
        args += _parents(Path(VENV_DIR), made)
        if self.venv is not None:
            args += ["--bind" if self.venv_writable else "--ro-bind", str(self.venv), VENV_DIR]
        if self.wheels is not None:
            args += ["--ro-bind", str(self.wheels), WHEELS_DIR]
        args += _parents(Path("/home/user"), made)
        args += ["--perms", "0755", "--size", str(self.tmp_bytes), "--tmpfs", "/home/user"]
        args += ["--bind", str(self.app_dir), APP_DIR]
        args += _parents(Path(RUN_DIR), made)
        args += ["--bind", str(self.run_dir), RUN_DIR]
        args += _parents(Path(SANDBOX_LAUNCHER), made)
        args += ["--ro-bind", str(LAUNCHER), SANDBOX_LAUNCHER, "--chdir", APP_DIR]
        spec = {
            "mode": mode,
            "argv": command,
            "env": env,
            "cwd": APP_DIR,
            "uid": self.uid if as_root() else None,
            "limits": self.limits,
            **serve,
        }
        base_python = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        args += ["--", base_python, "-I", "-S", SANDBOX_LAUNCHER, json.dumps(spec)]
        return args


def _under_system(path: Path) -> bool:
    return path.parts[:2] in (("/", "usr"), ("/", "etc"), ("/", "proc"), ("/", "dev"))


def _parents(path: Path, made: set[Path]) -> list[str]:
    """--dir for each missing ancestor of a mount point, world-readable (bwrap makes them 0700 as root,
    which the space's uid could not pass through)."""
    out: list[str] = []
    for parent in reversed(path.parents):
        if parent == Path("/") or parent in made:
            continue
        made.add(parent)
        out += ["--perms", "0755", "--dir", str(parent)]
    return out


def _outermost(paths: list[Path]) -> list[Path]:
    """The paths minus those inside another one of them (one bind covers both)."""
    resolved = sorted({Path(os.path.realpath(p)) for p in paths}, key=lambda p: len(p.parts))
    out: list[Path] = []
    for path in resolved:
        if not any(path == kept or kept in path.parents for kept in out):
            out.append(path)
    return out


def python_prefixes() -> list[Path]:
    """The hub interpreter's installation (read-only in every sandbox: the spaces' venvs point at it)."""
    return [Path(sys.base_prefix)]


def hub_import_paths(private: list[Path]) -> list[Path]:
    """The hub's own import path beyond the standard library (site-packages folders and the folder holding
    the cove package): what a layered space venv reads, read-only. A folder holding one of the private
    paths (the data dir) is never among them, whatever the hub's sys.path says."""
    private = [Path(os.path.realpath(p)) for p in private]
    out = []
    for entry in sys.path:
        if not entry or not os.path.isdir(entry):
            continue
        path = Path(os.path.realpath(entry))
        if not (path.name in ("site-packages", "dist-packages") or (path / "cove" / "__init__.py").exists()):
            continue
        if any(path == p or path in p.parents for p in private):
            continue
        out.append(path)
    return list(dict.fromkeys(out))
