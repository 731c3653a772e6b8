"""Headline figure: the hub stays responsive under hostile requests (issue 12).

One `cove serve` (SQLite + disk, as `bash scripts/run.sh` runs it) answers /api/health every 20 ms while
these are in flight at once:

- a 4.9 MB card: a README.md whose YAML front matter is 4.9 MB, committed through the API (NDJSON);
- a 300,000-line YAML posted to /api/validate-yaml;
  (both are over the 1 MB card cap, so they are refused at once; the work the hub does accept is next:)
- the largest cards the hub accepts, in rounds: a README whose front matter is just under the cap
  committed, and a YAML document just under it validated, --rounds times each, side by side;
- 1 GB anonymous bodies, streamed chunked and announced with Content-Length, to /api/validate-yaml and to
  /cove-lfs/{sha}/verify (the endpoint that took the server from 180 MB to 2.1 GB RSS before).

Prints the CPU, health latency (p50/p99/max) during the attacks, what each attack got (status, seconds, bytes
the client managed to send before the answer) and the server's RSS before and at its peak.

    python benchmarks/hub_attack.py [--yaml-lines 300000] [--card-mb 4.9] [--gigabytes 1]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers start the services

from cove.hardware import describe
from tests.server.services import cove_cli, start_serve

_POLLER = """
import sys, threading, time, httpx
url, stop, out = sys.argv[1], threading.Event(), []
threading.Thread(target=lambda: (sys.stdin.readline(), stop.set()), daemon=True).start()
with httpx.Client(timeout=60) as client:
    while not stop.is_set():
        t = time.perf_counter()
        ok = client.get(url).status_code == 200
        out.append(time.perf_counter() - t if ok else float("inf"))
        time.sleep(0.02)
print(" ".join(f"{x:.6f}" for x in out))
"""


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def big_body(url: str, path: str, total: int, *, chunked: bool) -> dict[str, object]:
    """Send up to total bytes to path (anonymously) over a raw socket, stopping when the server answers;
    returns the status, the seconds until the answer and the bytes sent by then."""
    parts = urlsplit(url)
    head = [f"POST {path} HTTP/1.1", f"Host: {parts.hostname}", "Content-Type: application/json"]
    head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}")
    chunk = b"x" * (1 << 20)
    frame = (f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n") if chunked else chunk
    t = time.perf_counter()
    sent, answer = 0, b""
    with socket.create_connection((parts.hostname, parts.port), timeout=120) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode())
        sock.setblocking(False)
        pending = b""
        deadline = time.monotonic() + 300
        while b"\r\n" not in answer and time.monotonic() < deadline:
            try:
                got = sock.recv(65536)
                if not got:
                    break
                answer += got
                continue
            except BlockingIOError:
                pass
            except ConnectionResetError:
                break
            if not pending and sent < total:
                pending = frame
                sent += len(chunk)
            if not pending:
                time.sleep(0.005)
                continue
            try:
                pending = pending[sock.send(pending) :]
            except BlockingIOError:
                time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
    seconds = time.perf_counter() - t
    status = int(answer.split()[1]) if answer.startswith(b"HTTP/") else None
    return {"status": status, "seconds": seconds, "sent MB": sent / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--yaml-lines", type=int, default=300_000)
    parser.add_argument("--card-mb", type=float, default=4.9)  # the store parses READMEs under 5 MB
    parser.add_argument("--gigabytes", type=float, default=1)
    parser.add_argument(
        "--rounds", type=int, default=5, help="commits and validations of the largest accepted card"
    )
    args = parser.parse_args()
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import huggingface_hub.constants
    from huggingface_hub import HfApi

    huggingface_hub.constants.HF_HUB_OFFLINE = False
    tmp = Path(tempfile.mkdtemp(prefix="cove-attack-"))
    settings = {"data_dir": tmp / "data"}
    token = cove_cli(["user", "add", "bench"], settings).strip().splitlines()[-1]
    server = start_serve(settings, tmp)
    proc = psutil.Process(server.proc.pid)
    api = HfApi(endpoint=server.url, token=token)
    api.create_repo("bench/card")
    time.sleep(1)
    rss_before = proc.memory_info().rss
    card_yaml = []
    size, i = 0, 0
    while size < args.card_mb * 1e6:  # long values: under the store's 100,000-value budget, 5 MB of YAML
        line = f"key_{i}: {'some words of the card ' * 5}{i}\n"
        card_yaml.append(line)
        size += len(line)
        i += 1
    readme = ("---\n" + "".join(card_yaml) + "---\n# A card\n").encode()
    yaml_text = "".join(f"k{i}: v{i}\n" for i in range(args.yaml_lines))
    from cove.store.cards import MAX_CARD_YAML_BYTES

    # the largest accepted card: just under the YAML cap, long values (under the 100,000-value budget)
    near_cap, size, i = [], 0, 0
    while size < MAX_CARD_YAML_BYTES - 2000:
        line = f"key_{i}: {'words of a large card ' * 4}{i}\n"
        near_cap.append(line)
        size += len(line)
        i += 1
    near_cap_yaml = "".join(near_cap)
    total = int(args.gigabytes * 2**30)
    sha = hashlib.sha256(b"x").hexdigest()

    results: dict[str, dict[str, object]] = {}
    stop = threading.Event()
    peak = [rss_before]

    def rss() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    def card() -> None:
        # through the API as the NDJSON commit huggingface_hub sends (its upload_file would first ask
        # validate-yaml itself)
        lines = [
            {"key": "header", "value": {"summary": "a large card"}},
            {
                "key": "file",
                "value": {
                    "path": "README.md",
                    "content": base64.b64encode(readme).decode(),
                    "encoding": "base64",
                },
            },
        ]
        t = time.perf_counter()
        r = httpx.post(
            f"{server.url}/api/models/bench/card/commit/main",
            content="\n".join(json.dumps(x) for x in lines).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        results[f"{len(readme) / 1e6:.1f} MB card commit"] = {
            "status": r.status_code,
            "seconds": time.perf_counter() - t,
        }

    def commit_readme(data: bytes) -> int:
        lines = [
            {"key": "header", "value": {"summary": "a large card"}},
            {
                "key": "file",
                "value": {
                    "path": "README.md",
                    "content": base64.b64encode(data).decode(),
                    "encoding": "base64",
                },
            },
        ]
        r = httpx.post(
            f"{server.url}/api/models/bench/card/commit/main",
            content="\n".join(json.dumps(x) for x in lines).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/x-ndjson"},
            timeout=600,
        )
        return r.status_code

    def accepted_cards() -> None:
        t, codes = time.perf_counter(), set()
        for n in range(args.rounds):  # a different README each round: no parse is served from a cache
            codes.add(commit_readme(f"---\nround: {n}\n{near_cap_yaml}---\n# A card\n".encode()))
        results[f"{args.rounds} x {len(near_cap_yaml) / 1e6:.2f} MB card commit (accepted)"] = {
            "status": "/".join(map(str, sorted(codes))),
            "seconds": time.perf_counter() - t,
        }

    def accepted_validations() -> None:
        t, codes = time.perf_counter(), set()
        for n in range(args.rounds):
            r = httpx.post(
                f"{server.url}/api/validate-yaml",
                json={"content": f"round: {n}\n{near_cap_yaml}"},
                timeout=600,
            )
            codes.add(r.status_code)
        results[f"{args.rounds} x {len(near_cap_yaml) / 1e6:.2f} MB YAML validate (accepted)"] = {
            "status": "/".join(map(str, sorted(codes))),
            "seconds": time.perf_counter() - t,
        }

    def validate() -> None:
        t = time.perf_counter()
        r = httpx.post(f"{server.url}/api/validate-yaml", json={"content": yaml_text}, timeout=600)
        results[f"{args.yaml_lines:,}-line YAML validate"] = {
            "status": r.status_code,
            "seconds": time.perf_counter() - t,
        }

    def body(path: str, chunked: bool) -> None:
        where = path.split("?")[0].replace(sha, "{sha}")
        label = f"{args.gigabytes:g} GB anon {'chunked' if chunked else 'Content-Length'} {where}"
        results[label] = big_body(server.url, path, total, chunked=chunked)

    def run(threads: list[threading.Thread]) -> float:
        t0 = time.perf_counter()
        for a in threads:
            a.start()
        for a in threads:
            a.join()
        return time.perf_counter() - t0

    def bodies() -> list[threading.Thread]:
        return [
            threading.Thread(target=body, args=("/api/validate-yaml", True)),
            threading.Thread(target=body, args=("/api/validate-yaml", False)),
            threading.Thread(target=body, args=(f"/cove-lfs/{sha}/verify", True)),
            threading.Thread(target=body, args=(f"/cove-lfs/{sha}/verify", False)),
        ]

    watcher = threading.Thread(target=rss)
    try:
        watcher.start()
        # 1. the 1 GB bodies alone: how fast they are refused, and what they cost in memory
        run(bodies())
        rss_bodies = peak[0]
        # 2. everything at once, with health polled every 20 ms from its own process
        poller = subprocess.Popen(
            [sys.executable, "-c", _POLLER, f"{server.url}/api/health"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        time.sleep(1.0)
        wall = run(
            [
                threading.Thread(target=card),
                threading.Thread(target=validate),
                threading.Thread(target=accepted_cards),
                threading.Thread(target=accepted_validations),
                *bodies(),
            ]
        )
        out, _ = poller.communicate("stop\n", timeout=120)
        latencies = [float(x) for x in out.split()]
        stop.set()
        watcher.join()
    finally:
        stop.set()
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    lat = sorted(latencies)
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}")
    print(f"hardware: {describe(measure=False)}")
    print(f"attacks in flight for {wall:.1f} s")
    print(
        f"/api/health during the attacks: {len(lat)} requests, p50 {statistics.median(lat) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms"
    )
    print(
        f"server RSS: {rss_before / 2**20:.0f} MB before, {rss_bodies / 2**20:.0f} MB at the peak of the 1 GB "
        f"bodies alone, {peak[0] / 2**20:.0f} MB at the peak of everything at once"
    )
    print(f"\n{'attack':<52}{'status':>8}{'seconds':>10}{'sent MB':>10}")
    for label, row in results.items():
        sent = row.get("sent MB")
        print(
            f"{label:<52}{row['status']!s:>8}{row['seconds']:>10.2f}"  # type: ignore[str-format]
            + (f"{sent:>10.1f}" if isinstance(sent, float) else f"{'':>10}")
        )


if __name__ == "__main__":
    main()
