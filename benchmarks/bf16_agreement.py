"""The error of Cove's bfloat16 fast mode, in greedy tokens: Cove bf16 against Cove fp32 and against
transformers bf16, on SmolLM2-135M-Instruct (the bundled GGUF, dequantized), for ``--prompts`` prompts of
``--new-tokens`` tokens each, at batch 1 and in left-padded batches of 8 (the batch the native bf16 decoding
step runs at most).

For each pair it prints how many prompts produce identical tokens, the mean number of leading tokens that
agree, and the share of all generated tokens inside those agreeing prefixes. Not a timing: it may run
beside other jobs.

    python benchmarks/bf16_agreement.py [--prompts 24] [--new-tokens 64]
"""

from __future__ import annotations

import argparse
import os
import sys

import torch
from generation import NAME  # benchmarks/generation.py
from generation import leading_agreement as leading
from generation_quant import bundled_gguf, greedy  # benchmarks/generation_quant.py

SUBJECTS = [
    "the ocean",
    "a lighthouse keeper",
    "prime numbers",
    "the French revolution",
    "a cup of coffee",
    "photosynthesis",
    "an old bicycle",
    "the moon landing",
    "a rainy afternoon",
    "machine learning",
    "the Roman empire",
    "a quiet library",
]
TEMPLATES = [
    "Write a short story about {}.",
    "Explain {} to a ten-year-old.",
    "Here are three facts about {}:",
    "A poem about {}:\n",
]


def prompts(n: int) -> list[str]:
    out = [t.format(s) for t in TEMPLATES for s in SUBJECTS]
    return out[:n]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=24)
    parser.add_argument("--new-tokens", type=int, default=64)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    import transformers
    from tokenizers import Tokenizer

    import cove
    from cove.checkpoint.gguf import GGUFFile
    from cove.hardware import describe

    transformers.logging.set_verbosity_error()
    gguf = bundled_gguf()
    tokenizer = Tokenizer.from_str(GGUFFile(gguf).tokenizer_files()["tokenizer.json"])
    print(f"hardware: {describe()}")
    texts = prompts(args.prompts)
    n = args.new_tokens
    ours16 = cove.AutoModelForCausalLM.from_pretrained(NAME, dtype=torch.bfloat16)
    ours32 = cove.AutoModelForCausalLM.from_pretrained(NAME, dtype=torch.float32)
    peer16 = transformers.AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16
    ).eval()
    print(f"{NAME}: {len(texts)} prompts x {n} greedy tokens\n")
    print(
        f"{'batch':>5} | {'pair':34} | {'identical':>9} | {'mean leading':>12} | {'tokens in agreeing prefix':>25}"
    )
    for batch in (1, 8):
        c16, c32, h16 = (greedy(model, tokenizer, texts, n, batch) for model in (ours16, ours32, peer16))
        pairs = (
            ("cove bf16 vs cove fp32", c16, c32),
            ("cove bf16 vs transformers bf16", c16, h16),
            ("(transformers bf16 vs cove fp32)", h16, c32),
        )
        for label, one, other in pairs:
            lead = [leading(a, b) for a, b in zip(one, other)]
            same = sum(x == n for x in lead)
            print(
                f"{batch:>5} | {label:34} | {same:>4}/{len(texts):<4} | {sum(lead) / len(lead):>12.1f} | "
                f"{sum(lead) / (n * len(lead)):>25.1%}",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
