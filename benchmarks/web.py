"""Headline figure: how fast the hub's website renders with many repos.

Seeds a hub (SQLite + disk blobs in a temp dir, on /dev/shm when there) through the store: repos in 100 namespaces (a tenth private;
models, datasets and Spaces), each with a card (YAML front matter + a body of a few hundred words), a
config, a small safetensors file and four commits. Then renders, in-process (FastAPI's TestClient, the
server's own work plus the in-process client's small overhead), the home page, a model list filtered by the
sidebar, a model list searched (README words, rare and common, and id pieces), a repo page, a files tree
and a commit diff, and prints p50/p99 per page at each size: the list and search pages must not grow with
the number of repos (target: p99 under 150 ms at 10,000).

    python benchmarks/web.py [--repos 1000 10000] [--requests 200] [--dir DIR]

The repo, tree and commit pages come from the repo pages' routes; on a checkout without them the script
says so instead of timing a 404.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cove.hardware import describe

TASKS = ("text-classification", "token-classification", "fill-mask", "text-generation", "summarization",
         "translation", "question-answering", "feature-extraction", "sentence-similarity",
         "zero-shot-classification")  # fmt: skip
LIBRARIES = ("transformers", "cove", "sentence-transformers", "peft", "gguf")
LICENSES = ("mit", "apache-2.0", "cc-by-4.0", "openrail", "other")
LANGUAGES = ("en", "fr", "de", "es", "zh", "ja", "ar", "hi", "ru", "pt")
NAMESPACES = 100
VOCABULARY = 5000  # body words are drawn Zipf-like from this many, plus one word only that repo has


def _word(i: int) -> str:
    consonants, vowels = "bcdfghjklmnprstvz", "aeiou"
    out = ""
    while True:
        out += consonants[i % 17] + vowels[(i // 17) % 5]
        i //= 85
        if not i:
            return out


def safetensors(shape: tuple[int, ...]) -> bytes:
    """A small valid safetensors file: one float32 tensor of zeros."""
    n = 1
    for d in shape:
        n *= d
    header = json.dumps({"weight": {"dtype": "F32", "shape": list(shape), "data_offsets": [0, 4 * n]}})
    raw = header.encode()
    return struct.pack("<Q", len(raw)) + raw + bytes(4 * n)


def _card(rng: random.Random, repo_type: str, i: int, version: int) -> str:
    card: dict[str, object] = {"license": rng.choice(LICENSES), "tags": [f"topic-{rng.randrange(40)}"]}
    if repo_type == "model":
        card |= {
            "pipeline_tag": rng.choice(TASKS),
            "library_name": rng.choice(LIBRARIES),
            "language": rng.sample(LANGUAGES, rng.randint(1, 3)),
            "datasets": [f"org{rng.randrange(NAMESPACES)}/data-{rng.randrange(200)}"],
        }
    elif repo_type == "dataset":
        card |= {"task_categories": [rng.choice(TASKS)], "language": [rng.choice(LANGUAGES)]}
    else:
        card |= {"sdk": rng.choice(("gradio", "streamlit", "docker"))}
    words = [_word(min(int(rng.paretovariate(1.1)), VOCABULARY)) for _ in range(300)]
    body = "\n\n".join(" ".join(words[k : k + 60]) for k in range(0, 300, 60))
    return (
        f"---\n{json.dumps(card)}\n---\n# Repo {i}\n\n{body}\n\nOnly here: uniq{i}x.\n\n"
        f"## Version\n\nCard version {version}.\n"
    )


def seed(data_dir: Path, start: int, stop: int) -> tuple[float, list[str], list[str]]:
    """Repos start..stop-1 (each created with four commits) through the store; returns the seconds it took
    and the public model ids and last commit ids, for the repo pages."""
    from sqlalchemy import event

    from cove.server.auth.service import create_account, get_account
    from cove.store import CommitOp, FileEntry, RepoStore

    store = RepoStore(data_dir)

    # the benchmark's own seeding needs no durability: no fsync per commit (the served hub keeps it)
    @event.listens_for(store.engine, "connect")
    def _fast(conn, _record):  # type: ignore[no-untyped-def]
        conn.execute("PRAGMA synchronous=OFF")

    store.create_tables()
    t0 = time.perf_counter()
    models, commits = [], []
    shared: dict[bytes, FileEntry] = {}  # files many repos hold (weights, configs): stored once
    with store.session() as s:
        for k in range(NAMESPACES):
            if get_account(s, f"org{k}") is None:
                create_account(s, f"org{k}", "user")
        for i in range(start, stop):
            rng = random.Random(i)
            repo_type = "model" if i % 10 < 8 else ("dataset" if i % 10 == 8 else "space")
            namespace, private = f"org{i % NAMESPACES}", rng.random() < 0.1
            repo_id = f"{namespace}/{repo_type}-{i:05d}"
            row = store.create_repo(s, repo_type, repo_id, private=private, author=namespace)

            def add(path: str, data: bytes) -> CommitOp:
                if path == "README.md":
                    return CommitOp("add", path, store.store_regular(data, path))
                if data not in shared:
                    if path.endswith(".safetensors"):  # an LFS file, as uploads store them
                        shared[data] = store.lfs_entry(path, store.blobs.put_bytes(data), len(data))
                    else:
                        shared[data] = store.store_regular(data, path)
                return CommitOp("add", path, shared[data])

            config = json.dumps({"model_type": "bert", "hidden_size": 32 + i % 7, "num_hidden_layers": 2})
            steps = [
                ("Add the card and config", [add("README.md", _card(rng, repo_type, i, 1).encode()),
                                             add("config.json", config.encode())]),
                ("Add weights", [add("model.safetensors", safetensors((4, 8)))]),
                ("Update the card and grow the weights",
                 [add("README.md", _card(random.Random(i), repo_type, i, 2).encode()),
                  add("model.safetensors", safetensors((4, 16)))]),
            ]  # fmt: skip
            last = ""
            for title, ops in steps:
                last = store.commit(s, row, ops, title=title, author=namespace)
            if repo_type == "model" and not private:
                models.append(repo_id)
                commits.append(last)
    store.engine.dispose()
    return time.perf_counter() - t0, models, commits


def timed(client, urls: list[str]) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    """p50 and p99 in ms over the urls, and the first status that was not 200 (0 when none)."""
    headers = {"accept": "text/html"}
    for url in urls[:5]:  # warm-up: templates compiled, caches filled once
        client.get(url, headers=headers)
    times, bad = [], 0
    for url in urls:
        t0 = time.perf_counter()
        r = client.get(url, headers=headers)
        times.append((time.perf_counter() - t0) * 1000)
        if r.status_code != 200 and not bad:
            bad = r.status_code
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(0.99 * len(times)))], bad


def pages(models: list[str], commits: list[str], n: int, requests: int) -> dict[str, Callable[[], list[str]]]:
    rng = random.Random(1)

    def pick() -> int:
        return rng.randrange(len(models))

    def repo_urls(suffix: Callable[[int], str]) -> Callable[[], list[str]]:
        return lambda: [f"/{models[j]}{suffix(j)}" for j in (pick() for _ in range(requests))]

    def searches() -> list[str]:
        kinds = [
            lambda: _word(rng.randrange(3)),  # in most cards
            lambda: _word(rng.randrange(50, 500)),  # in some
            lambda: f"uniq{rng.randrange(n)}x",  # in one README
            lambda: f"l-{rng.randrange(n):05d}"[:6],  # a piece of some ids
            lambda: f"{_word(rng.randrange(5))} {_word(rng.randrange(5, 40))}",  # two words
        ]
        return [f"/models?search={kinds[k % len(kinds)]()}" for k in range(requests)]

    def filters() -> list[str]:
        options = [
            lambda: f"task={rng.choice(TASKS)}",
            lambda: f"library={rng.choice(LIBRARIES)}&sort=downloads",
            lambda: f"license={rng.choice(LICENSES)}&language={rng.choice(LANGUAGES)}",
            lambda: f"author=org{rng.randrange(NAMESPACES)}&sort=likes",
            lambda: f"dataset=org{rng.randrange(NAMESPACES)}/data-{rng.randrange(200)}",
        ]
        return [f"/models?{options[k % len(options)]()}" for k in range(requests)]

    return {
        "home /": lambda: ["/"] * requests,
        "list, filtered": filters,
        "list, searched": searches,
        "repo page": repo_urls(lambda j: ""),
        "tree page": repo_urls(lambda j: "/tree/main"),
        "commit diff": repo_urls(lambda j: f"/commit/{commits[j]}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repos", type=int, nargs="+", default=[1000, 10_000],
                        help="hub sizes to measure at, growing one hub (default: 1000 10000)")  # fmt: skip
    parser.add_argument("--requests", type=int, default=200, help="requests per page kind and size")
    shm = Path("/dev/shm")
    parser.add_argument("--dir", type=Path, default=shm if shm.is_dir() else None,
                        help="where the temp hub lives (default: /dev/shm when there, so seeding is not "
                        "bound by the disk's renames)")  # fmt: skip
    args = parser.parse_args()
    sizes = sorted(set(args.repos))
    if not sizes or sizes[0] < 10:
        parser.error("--repos: give sizes of at least 10 repos")

    from fastapi.testclient import TestClient

    from cove.server.app import create_app
    from cove.server.settings import Settings

    print(describe())
    results: dict[int, dict[str, tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="cove-web-bench-") as tmp:
        data_dir = Path(tmp) / "hub"
        models: list[str] = []
        commits: list[str] = []
        done = 0
        for n in sizes:
            seconds, new_models, new_commits = seed(data_dir, done, n)
            print(f"seeded repos {done:,} to {n:,} (4 commits each) in {seconds:.0f} s")
            models, commits, done = models + new_models, commits + new_commits, n
            app = create_app(Settings(data_dir=data_dir, import_bundled=False))
            with TestClient(app) as client:
                results[n] = {}
                for label, urls in pages(models, commits, n, args.requests).items():
                    results[n][label] = timed(client, urls())
            app.state.hub.store.engine.dispose()

    header = f"{'page':18}" + "".join(f"{f'{n:,} repos p50/p99 ms':>26}" for n in sizes)
    print(header)
    for label in results[sizes[0]]:
        cells = []
        for n in sizes:
            p50, p99, bad = results[n][label]
            cells.append(f"{'not on this checkout':>26}" if bad == 404 else f"{p50:>15.1f} / {p99:>7.1f}")
        status = {results[n][label][2] for n in sizes} - {0}
        verdict = ""
        if status and status != {404}:
            verdict = f"  errors: {sorted(status)}"
        elif not status:
            verdict = "  ok" if results[sizes[-1]][label][1] < 150 else "  over the 150 ms target"
        print(f"{label:18}" + "".join(cells) + verdict)


if __name__ == "__main__":
    main()
