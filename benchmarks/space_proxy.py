"""Headline figure: what the space proxy costs. The same requests go to a small ASGI app (uvicorn on a unix
socket, as a space's app listens) directly and through a live hub's /spaces/{owner}/{name}/ proxy, rounds
interleaved so the shared machine's drift hits both: small GETs (latency), a large download and a large
upload (throughput, streamed both ways), and an SSE stream of many small events. The peer is the app
itself: the ratio is the proxy's overhead.

    python benchmarks/space_proxy.py [--rounds 5] [--requests 200] [--megabytes 64] [--events 2000]

The app and the hub run in processes of their own (this script, with --serve-app / --serve-hub); the
client is this process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHUNK = 64 * 1024
SPACE = "bench/app"


def serve_app(uds: str) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse, StreamingResponse
    from starlette.routing import Route

    async def small(request: Request) -> PlainTextResponse:
        return PlainTextResponse("x" * 1024)

    async def download(request: Request) -> StreamingResponse:
        size = int(request.query_params["bytes"])
        block = b"\0" * CHUNK

        async def body():  # type: ignore[no-untyped-def]
            for _ in range(size // CHUNK):
                yield block

        return StreamingResponse(body(), media_type="application/octet-stream")

    async def upload(request: Request) -> PlainTextResponse:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return PlainTextResponse(str(n))

    async def sse(request: Request) -> StreamingResponse:
        count = int(request.query_params["events"])

        async def events():  # type: ignore[no-untyped-def]
            for i in range(count):
                yield f"data: {i}\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    routes = [
        Route("/small", small),
        Route("/download", download),
        Route("/upload", upload, methods=["POST"]),
    ]
    app = Starlette(routes=[*routes, Route("/sse", sse)])
    uvicorn.run(app, uds=uds, log_level="warning")


def serve_hub(data_dir: str, port: int, uds: str) -> None:
    import uvicorn

    from cove.server.app import create_app
    from cove.server.settings import Settings
    from cove.server.spaces.target import RUNNING, SpaceTarget
    from cove.store import CommitOp

    app = create_app(Settings(data_dir=Path(data_dir), import_bundled=False, spaces="off"))
    store = app.state.hub.store
    with store.session() as s:
        row = store.create_repo(s, "space", SPACE, author="bench")
        readme = store.store_regular(b"---\nsdk: gradio\n---\n", "README.md")
        store.commit(s, row, [CommitOp("add", "README.md", readme)], title="space", author="bench")
    target = SpaceTarget(RUNNING, uds=uds)

    async def locate(repo_id: str) -> SpaceTarget:
        return target

    app.state.space_proxy.locate = locate  # the proxy alone is measured: a fixed target, no runtime
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _wait(client, url: str, process: subprocess.Popen) -> None:  # type: ignore[no-untyped-def]
    import httpx

    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"a server exited (code {process.returncode})")
        try:
            if client.get(url).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer within 120 s")


def measure(direct, proxied, args) -> dict[str, list[tuple[float, float]]]:  # type: ignore[no-untyped-def]
    """{figure: [(direct, proxied) per round]}: seconds per small request, MB/s, events/s."""
    size = args.megabytes * 1024 * 1024
    figures: dict[str, list[tuple[float, float]]] = {"small GET (ms)": [], "download (MB/s)": []}
    figures.update({"upload (MB/s)": [], "SSE (events/s)": []})

    def small(client, base):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        for _ in range(args.requests):
            client.get(f"{base}/small").raise_for_status()
        return (time.perf_counter() - start) / args.requests * 1000

    def download(client, base):  # type: ignore[no-untyped-def]
        start, got = time.perf_counter(), 0
        with client.stream("GET", f"{base}/download", params={"bytes": size}) as r:
            for chunk in r.iter_raw():
                got += len(chunk)
        assert got == size, got
        return size / 1e6 / (time.perf_counter() - start)

    def upload(client, base):  # type: ignore[no-untyped-def]
        block = b"\1" * CHUNK

        def body():  # type: ignore[no-untyped-def]
            for _ in range(size // CHUNK):
                yield block

        start = time.perf_counter()
        r = client.post(f"{base}/upload", content=body())
        assert int(r.text) == size, r.text
        return size / 1e6 / (time.perf_counter() - start)

    def sse(client, base):  # type: ignore[no-untyped-def]
        start, seen = time.perf_counter(), 0
        with client.stream("GET", f"{base}/sse", params={"events": args.events}) as r:
            for line in r.iter_lines():
                seen += line.startswith("data:")
        assert seen == args.events, seen
        return args.events / (time.perf_counter() - start)

    for i in range(args.rounds):
        for name, fn in zip(figures, (small, download, upload, sse)):
            # interleaved, and which side goes first alternates
            if i % 2:
                p = fn(*proxied)
                d = fn(*direct)
            else:
                d = fn(*direct)
                p = fn(*proxied)
            figures[name].append((d, p))
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--megabytes", type=int, default=64)
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--serve-app", metavar="UDS", help=argparse.SUPPRESS)
    parser.add_argument("--serve-hub", nargs=3, metavar=("DIR", "PORT", "UDS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_app:
        return serve_app(args.serve_app)
    if args.serve_hub:
        return serve_hub(args.serve_hub[0], int(args.serve_hub[1]), args.serve_hub[2])

    import socket

    import httpx

    from cove.hardware import describe

    folder = tempfile.mkdtemp(prefix="cove-bench-proxy-")
    uds = os.path.join(folder, "app.sock")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    me = [sys.executable, str(Path(__file__).resolve())]
    app = subprocess.Popen([*me, "--serve-app", uds])
    hub = subprocess.Popen([*me, "--serve-hub", os.path.join(folder, "hub"), str(port), uds])
    timeout = httpx.Timeout(60.0)
    direct_client = httpx.Client(transport=httpx.HTTPTransport(uds=uds), timeout=timeout)
    proxied_client = httpx.Client(timeout=timeout)
    direct = (direct_client, "http://app")
    proxied = (proxied_client, f"http://127.0.0.1:{port}/spaces/{SPACE}")
    try:
        _wait(direct_client, "http://app/small", app)
        _wait(proxied_client, f"{proxied[1]}/small", hub)
        print(describe())
        print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        figures = measure(direct, proxied, args)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"medians of {args.rounds} interleaved rounds ({args.requests} small GETs, {args.megabytes} MB "
              f"down and up, {args.events} SSE events)")  # fmt: skip
        print(f"{'figure':<18} {'app direct':>12} {'via proxy':>12} {'proxy/direct':>13}")
        for name, rows in figures.items():
            d = statistics.median(r[0] for r in rows)
            p = statistics.median(r[1] for r in rows)
            print(f"{name:<18} {d:>12.2f} {p:>12.2f} {p / d:>12.2f}x")
    finally:
        direct_client.close()
        proxied_client.close()
        for process in (hub, app):
            process.terminate()
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
