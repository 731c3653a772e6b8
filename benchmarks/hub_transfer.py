"""Headline figure: hub upload/download throughput on a local Cove server, with both clients.

Starts a Cove hub on 127.0.0.1 (temp data dir), then moves the same random file through it:
upload with huggingface_hub (regular path, as 2.x clients use it) and with Cove's client (LFS basic
transfer), download with huggingface_hub's hf_hub_download and with cove.hub.hub_download, each into a
fresh cache. Prints MB/s per step (median of the repeats) and checks the bytes round-trip.

    python benchmarks/hub_transfer.py [--mb 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from cove.hardware import describe


def _serve(data_dir: Path):  # type: ignore[no-untyped-def]
    import httpx
    import uvicorn

    from cove.server.app import create_app
    from cove.server.auth.service import create_account, create_token
    from cove.server.settings import Settings

    app = create_app(Settings(data_dir=data_dir, import_bundled=False))
    with app.state.hub.store.session() as s:
        create_account(s, "bench", "user")
        token = create_token(s, "bench")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if httpx.get(f"{url}/api/health").status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return server, url, token


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mb", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.environ.pop("HF_HUB_OFFLINE", None)
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    import huggingface_hub.constants
    from huggingface_hub import HfApi, hf_hub_download

    from cove.hub import client

    huggingface_hub.constants.HF_HUB_OFFLINE = False
    tmp = Path(tempfile.mkdtemp(prefix="cove-bench-"))
    server, url, token = _serve(tmp / "data")
    payload = os.urandom(args.mb * 1024 * 1024)
    digest = hashlib.sha256(payload).hexdigest()
    src = tmp / "weights.bin"
    src.write_bytes(payload)
    api = HfApi(endpoint=url, token=token)
    api.create_repo("bench/hf")
    client.create_repo("bench/cove", token=token, endpoint=url)
    times: dict[str, list[float]] = {
        k: [] for k in ("hf upload", "cove upload", "hf download", "cove download")
    }
    for i in range(args.repeats):
        data = payload[:-8] + i.to_bytes(8, "little")  # new content each round: no dedup shortcut
        src.write_bytes(data)
        t = time.perf_counter()
        api.upload_file(path_or_fileobj=src, path_in_repo="weights.bin", repo_id="bench/hf")
        times["hf upload"].append(time.perf_counter() - t)
        t = time.perf_counter()
        client.upload_file("bench/cove", src, "weights.bin", token=token, endpoint=url)
        times["cove upload"].append(time.perf_counter() - t)
        t = time.perf_counter()
        got = hf_hub_download("bench/hf", "weights.bin", endpoint=url, token=token, cache_dir=tmp / f"hf{i}")
        times["hf download"].append(time.perf_counter() - t)
        assert hashlib.sha256(Path(got).read_bytes()).digest() == hashlib.sha256(data).digest()
        t = time.perf_counter()
        got = client.hub_download(
            "bench/cove", "weights.bin", token=token, endpoint=url, cache_dir=tmp / f"cv{i}"
        )
        times["cove download"].append(time.perf_counter() - t)
        assert Path(got).read_bytes() == data
    print(f"hardware: {describe(measure=False)}")
    print(f"file: {args.mb} MiB (sha256 {digest[:12]}...), {args.repeats} repeats, server: cove on {url}")
    for step, values in times.items():
        median = statistics.median(values)
        print(f"{step:>14}: {args.mb / median:8.1f} MB/s  (median {median:.2f} s)")
    server.should_exit = True


if __name__ == "__main__":
    main()
