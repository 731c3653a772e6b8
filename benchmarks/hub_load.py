"""Headline figure: the hub under load, on loopback, beside a plain static file server.

50 concurrent clients download (mixed small files, byte ranges and whole copies of a 200 MB file) while
5 clients commit, for a fixed time, against: one `cove serve` on SQLite + disk, one on PostgreSQL + S3
(SeaweedFS), and two replicas sharing that PostgreSQL + S3; then the same download mix against nginx (or
Python's http.server when nginx is not installed) serving the same files. Prints requests/s, MB/s,
p99 latency and errors per target, checks that no commit was lost, and measures large-file download
throughput (4 concurrent whole-file downloads) against the static server's.

    python benchmarks/hub_load.py [--seconds 60] [--downloaders 50] [--committers 5] [--large-mb 200]

Everything listens on 127.0.0.1; PostgreSQL and SeaweedFS are started as in the tests (temp dirs).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cove.hardware import describe

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers start the services

from tests.server.services import (
    cove_cli,
    free_port,
    start_postgres,
    start_seaweedfs,
    start_serve,
)


@dataclass
class Stats:
    latencies: list[float] = field(default_factory=list)
    nbytes: int = 0
    errors: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _download_mix(
    urls: list[str], files: dict[str, int], large: str, stop: float, stats: Stats, seed: int
) -> None:
    rng = random.Random(seed)
    small = [f for f in files if f != large]
    with httpx.Client(timeout=120) as client:
        while time.monotonic() < stop:
            base = rng.choice(urls)
            roll = rng.random()
            headers = {}
            if roll < 0.75:
                name = rng.choice(small)
            elif roll < 0.95:  # a 1 MiB range of the large file, as resumed downloads ask
                name = large
                start = rng.randrange(0, files[large] - 2**20)
                headers["Range"] = f"bytes={start}-{start + 2**20 - 1}"
            else:
                name = large
            t = time.perf_counter()
            try:
                got = 0
                with client.stream("GET", f"{base}/{name}", headers=headers) as r:
                    for chunk in r.iter_bytes(1 << 20):
                        got += len(chunk)
                want = 2**20 if "Range" in headers else files[name]
                ok = r.status_code in (200, 206) and got == want
            except httpx.HTTPError as exc:
                ok, got = False, 0
                r = None  # type: ignore[assignment]
                err = repr(exc)
            elapsed = time.perf_counter() - t
            with stats.lock:
                stats.latencies.append(elapsed)
                stats.nbytes += got
                if not ok:
                    stats.errors.append(err if r is None else f"{name}: {r.status_code} {got} bytes")


def _commit_loop(urls: list[str], token: str, stop: float, stats: Stats, seed: int) -> None:
    from huggingface_hub import HfApi

    rng = random.Random(seed)
    apis = [HfApi(endpoint=u, token=token) for u in urls]
    n = 0
    while time.monotonic() < stop:
        n += 1
        try:
            info = rng.choice(apis).upload_file(
                path_or_fileobj=os.urandom(2048), path_in_repo=f"c{seed}/{n}.bin", repo_id="bench/commits"
            )
            with stats.lock:
                stats.commits.append(info.oid)
        except Exception as exc:  # every failure is an error in the report
            with stats.lock:
                stats.errors.append(f"commit: {exc!r}"[:300])


def run_load(
    label: str, urls: list[str], files: dict[str, int], large: str, args, token: str | None
) -> dict[str, float]:  # type: ignore[no-untyped-def]
    stats = Stats()
    stop = time.monotonic() + args.seconds
    threads = [
        threading.Thread(target=_download_mix, args=(urls, files, large, stop, stats, i))
        for i in range(args.downloaders)
    ]
    if token is not None:
        threads += [
            threading.Thread(
                target=_commit_loop,
                args=([u.rsplit("/bench/files/resolve/main", 1)[0] for u in urls], token, stop, stats, i),
            )
            for i in range(args.committers)
        ]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lost = 0
    if token is not None:
        from huggingface_hub import HfApi

        root = urls[0].rsplit("/bench/files/resolve/main", 1)[0]
        history = {c.commit_id for c in HfApi(endpoint=root, token=token).list_repo_commits("bench/commits")}
        lost = len(set(stats.commits) - history)
    lat = sorted(stats.latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    out = {
        "requests/s": len(lat) / wall,
        "MB/s": stats.nbytes / wall / 1e6,
        "p50 ms": statistics.median(lat) * 1000 if lat else float("nan"),
        "p99 ms": p99 * 1000,
        "errors": len(stats.errors),
        "commits": len(stats.commits),
        "lost commits": lost,
    }
    if stats.errors:
        print(f"  {label}: first errors: {stats.errors[:3]}")
    return out


def large_throughput(urls: list[str], large: str, size: int, clients: int = 4, rounds: int = 2) -> float:
    """MB/s of `clients` concurrent whole-file downloads of the large file, `rounds` each."""
    done = [0]
    lock = threading.Lock()

    def worker(i: int) -> None:
        with httpx.Client(timeout=300) as client:
            for _ in range(rounds):
                got = 0
                with client.stream("GET", f"{urls[i % len(urls)]}/{large}") as r:
                    for chunk in r.iter_bytes(1 << 20):
                        got += len(chunk)
                assert got == size, (r.status_code, got)
                with lock:
                    done[0] += got

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return done[0] / (time.perf_counter() - t) / 1e6


def start_static(root: Path, tmp: Path) -> tuple[str, subprocess.Popen, str]:
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx:
        conf = tmp / "nginx.conf"
        conf.write_text(
            f"daemon off; worker_processes 2; pid {tmp}/nginx.pid; error_log {tmp}/nginx.err;\n"
            "events { worker_connections 1024; }\n"
            f"http {{ access_log off; sendfile on; client_body_temp_path {tmp}/nb; proxy_temp_path {tmp}/np;\n"
            f"  fastcgi_temp_path {tmp}/nf; uwsgi_temp_path {tmp}/nu; scgi_temp_path {tmp}/ns;\n"
            f"  server {{ listen 127.0.0.1:{port}; root {root}; }} }}\n"
        )
        proc = subprocess.Popen([nginx, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        kind = "nginx"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(root)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        kind = "python http.server (no Range support: ranges get whole files)"
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            httpx.get(url + "/", timeout=2)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    return url, proc, kind


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--downloaders", type=int, default=50)
    parser.add_argument("--committers", type=int, default=5)
    parser.add_argument("--large-mb", type=int, default=200)
    parser.add_argument("--small-files", type=int, default=20)
    args = parser.parse_args()
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import huggingface_hub.constants
    from huggingface_hub import HfApi

    huggingface_hub.constants.HF_HUB_OFFLINE = False
    huggingface_hub.constants.HF_HUB_DISABLE_XET = True
    tmp = Path(tempfile.mkdtemp(prefix="cove-load-"))
    tmp.chmod(0o755)  # nginx workers run as an unprivileged user
    files_dir = tmp / "files"
    files_dir.mkdir()
    rng = random.Random(0)
    files: dict[str, int] = {}
    for i in range(args.small_files):
        size = rng.randrange(1024, 64 * 1024)
        (files_dir / f"small{i:02d}.bin").write_bytes(os.urandom(size))
        files[f"small{i:02d}.bin"] = size
    large = "large.bin"
    with (files_dir / large).open("wb") as f:
        for _ in range(args.large_mb):
            f.write(os.urandom(2**20))
    files[large] = args.large_mb * 2**20

    pg = start_postgres()
    s3 = start_seaweedfs()
    cleanup: list = [pg, s3]
    results: dict[str, dict[str, float]] = {}
    large_mbs: dict[str, float] = {}
    try:
        shared = {
            "database_url": pg.new_database(),
            **s3.new_bucket_settings(),
            "secret": os.urandom(32).hex(),
        }
        setups = {
            "cove x1 (SQLite+disk)": [{"data_dir": tmp / "sqlite"}],
            "cove x1 (PostgreSQL+S3)": [{**shared, "data_dir": tmp / "r0"}],
            "cove x2 (PostgreSQL+S3)": [
                {**shared, "data_dir": tmp / "r0"},
                {**shared, "data_dir": tmp / "r1"},
            ],
        }
        seeded: set[str] = set()
        for label, replica_settings in setups.items():
            first = replica_settings[0]
            key = str(first.get("database_url", first["data_dir"]))
            if key not in seeded:
                cove_cli(["db", "upgrade"], first)
                token = cove_cli(["user", "add", "bench"], first).strip().splitlines()[-1]
            servers = [start_serve({**s, "upload_mode": "lfs"}, tmp) for s in replica_settings]
            cleanup += servers
            if key not in seeded:
                api = HfApi(endpoint=servers[0].url, token=token)
                api.create_repo("bench/files")
                api.create_repo("bench/commits")
                api.upload_folder(repo_id="bench/files", folder_path=files_dir)
                seeded.add(key)
            urls = [f"{s.url}/bench/files/resolve/main" for s in servers]
            print(
                f"{label}: {args.seconds:g} s, {args.downloaders} downloaders + {args.committers} committers ..."
            )
            results[label] = run_load(label, urls, files, large, args, token)
            large_mbs[label] = large_throughput(urls, large, files[large])
            for s in servers:
                s.stop()
        url, proc, kind = start_static(files_dir, tmp)
        print(f"static ({kind}): {args.seconds:g} s, {args.downloaders} downloaders ...")
        results["static"] = run_load("static", [url], files, large, args, None)
        large_mbs["static"] = large_throughput([url], large, files[large])
        proc.terminate()
        proc.wait(10)
    finally:
        for c in cleanup:
            c.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nhardware: {describe(measure=False)}")
    cols = ["requests/s", "MB/s", "p50 ms", "p99 ms", "errors", "commits", "lost commits"]
    print(f"\n{'target':<26}" + "".join(f"{c:>14}" for c in cols) + f"{'large MB/s':>14}{'vs static':>11}")
    for label, row in results.items():
        ratio = large_mbs[label] / large_mbs["static"]
        print(
            f"{label:<26}"
            + "".join(f"{row[c]:>14.1f}" if isinstance(row[c], float) else f"{row[c]:>14}" for c in cols)
            + f"{large_mbs[label]:>14.1f}{ratio:>10.0%}"
        )


if __name__ == "__main__":
    main()
