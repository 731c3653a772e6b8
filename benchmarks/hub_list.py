"""Headline figure: listing and searching a hub with many repos (what list_models() calls).

Inserts N model repos (default 10,000: 100 namespaces, a tenth private, cards with tags, a pipeline tag
and a license) straight into a SQLite data dir at the first schema revision, then starts the hub (which
migrates it, back-filling the derived tags) and times huggingface_hub's list_models(limit=50) calls,
anonymous and as a user, with filters, search and sorts. Prints the median and p95 per call.

    python benchmarks/hub_list.py [--repos 10000] [--runs 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the test helpers start the hub

from tests.server.conftest import start_hub

PIPELINES = ("fill-mask", "text-classification", "token-classification", "text-generation")
LICENSES = ("mit", "apache-2.0", "cc-by-4.0")


def seed(data_dir: Path, n: int) -> None:
    from sqlalchemy import text

    from cove.store import make_engine, upgrade_schema

    engine = make_engine(f"sqlite:///{data_dir / 'hub.sqlite'}")
    upgrade_schema(engine, "0001")  # the schema before the derived tags: the upgrade back-fills them
    rng = random.Random(0)
    start = dt.datetime(2024, 1, 1)
    rows = []
    for i in range(n):
        created = start + dt.timedelta(minutes=rng.randrange(500_000))
        card = {
            "pipeline_tag": rng.choice(PIPELINES),
            "license": rng.choice(LICENSES),
            "tags": [f"topic-{rng.randrange(50)}", "benchmark"],
            "language": ["en"] if rng.random() < 0.5 else ["fr", "de"],
        }
        rows.append(
            {
                "type": "model",
                "namespace": f"org{i % 100}",
                "name": f"model-{i:05d}",
                "private": rng.random() < 0.1,
                "created_at": created,
                "updated_at": created + dt.timedelta(minutes=rng.randrange(10_000)),
                "card_json": json.dumps(card),
                "downloads": rng.randrange(1_000_000),
            }
        )
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO repos (type, namespace, name, private, created_at, updated_at, card_json, "
                "downloads) VALUES (:type, :namespace, :name, :private, :created_at, :updated_at, "
                ":card_json, :downloads)"
            ),
            rows,
        )
    engine.dispose()


def timed(call, runs: int) -> tuple[float, float, int]:  # type: ignore[no-untyped-def]
    call()  # warm-up
    times, count = [], 0
    for _ in range(runs):
        t0 = time.perf_counter()
        count = len(call())
        times.append(time.perf_counter() - t0)
    times.sort()
    return statistics.median(times) * 1000, times[int(0.95 * (len(times) - 1))] * 1000, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--repos", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        seed(data_dir, args.repos)
        t0 = time.perf_counter()
        live, server, thread = start_hub(data_dir)
        print(f"{args.repos:,} repos; hub start (schema upgrade, back-fill) {time.perf_counter() - t0:.2f} s")
        anon, alice = live.api(user=None), live.api()
        cases = {
            "list_models(limit=50)": lambda: list(anon.list_models(limit=50)),
            "  as a user": lambda: list(alice.list_models(limit=50)),
            "  sort=downloads": lambda: list(anon.list_models(limit=50, sort="downloads")),
            "  filter=fill-mask,license:mit": lambda: list(
                anon.list_models(limit=50, filter=["fill-mask", "license:mit"])
            ),
            "  search=model-09": lambda: list(anon.list_models(limit=50, search="model-09")),
            "  author=org7, cardData": lambda: list(anon.list_models(limit=50, author="org7", cardData=True)),
            "  limit=500, sort=last_modified": lambda: list(
                anon.list_models(limit=500, sort="last_modified")
            ),
        }
        print(f"{'call':36} {'median ms':>10} {'p95 ms':>8} {'items':>6}")
        for label, call in cases.items():
            median, p95, count = timed(call, args.runs)
            print(f"{label:36} {median:10.1f} {p95:8.1f} {count:6d}")
        server.should_exit = True  # type: ignore[attr-defined]
        thread.join(timeout=10)


if __name__ == "__main__":
    main()
