"""Headline figure: sentence embeddings per second with all-MiniLM-L6-v2, Cove vs transformers.

Both sides embed the same >= 2,000 mixed-length English sentences in batches of 32 (mean pooling +
L2 normalisation, as sentence-transformers does). transformers runs the usual loop (batches in input order,
padding=True) in fp32; Cove runs its sentence-similarity pipeline (length-sorted batches) in fp32 and in its
bf16 fast mode. Runs are interleaved and repeated; medians are reported, with the ratio to transformers fp32
and the agreement of the embeddings (max abs difference for fp32, min cosine for bf16).

    python benchmarks/encoder_throughput.py [--repeats 3] [--sentences 2000]
"""

from __future__ import annotations

import argparse
import inspect
import re
import statistics
import sys
import time

import torch

from cove.hardware import describe

NAME = "sentence-transformers/all-MiniLM-L6-v2"


def english_sentences(n: int) -> list[str]:
    """Real English of mixed length: sentences from the docstrings of the standard library."""
    import collections
    import email
    import http.client
    import json
    import logging
    import pathlib
    import subprocess
    import threading
    import unittest

    texts = []
    for module in (
        collections,
        email,
        http.client,
        json,
        logging,
        pathlib,
        subprocess,
        threading,
        unittest,
        argparse,
        re,
    ):
        for _, obj in inspect.getmembers(module):
            doc = inspect.getdoc(obj)
            if doc:
                texts.append(doc)
    sentences = []
    for text in texts:
        for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
            if 3 <= len(s.split()) <= 200 and s not in sentences:
                sentences.append(s)
    if len(sentences) < n:
        sentences = sentences * (n // len(sentences) + 1)
    return sentences[:n]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1)


def transformers_embed(model, tok, sentences: list[str], batch_size: int) -> torch.Tensor:
    out = []
    with torch.inference_mode():
        for i in range(0, len(sentences), batch_size):
            enc = tok(sentences[i : i + batch_size], padding=True, truncation=True, return_tensors="pt")
            out.append(mean_pool(model(**enc).last_hidden_state, enc["attention_mask"]))
    return torch.cat(out)


def timed(fn):
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()

    import transformers

    import cove
    from cove.hub.bundled import bundled_path, find_bundled

    torch.manual_seed(0)
    sentences = english_sentences(args.sentences)
    lengths = [len(s.split()) for s in sentences]
    print(f"hardware: {describe()}")
    print(
        f"{len(sentences)} sentences, words per sentence: min {min(lengths)}, median "
        f"{statistics.median(lengths)}, max {max(lengths)}; batch {args.batch_size}; torch threads "
        f"{torch.get_num_threads()}"
    )

    folder = bundled_path(find_bundled(NAME))
    hf_tok = transformers.AutoTokenizer.from_pretrained(folder)
    hf_model = transformers.AutoModel.from_pretrained(folder).eval()
    cove32 = cove.pipeline("sentence-similarity", model=NAME, batch_size=args.batch_size)
    cove16 = cove.pipeline("sentence-similarity", model=NAME, batch_size=args.batch_size, dtype="bfloat16")

    runs = {
        "transformers fp32": lambda: transformers_embed(hf_model, hf_tok, sentences, args.batch_size),
        "cove fp32": lambda: cove32.encode(sentences),
        "cove bf16": lambda: cove16.encode(sentences),
    }
    warm = sentences[: args.batch_size * 2]
    transformers_embed(hf_model, hf_tok, warm, args.batch_size)
    cove32.encode(warm)
    cove16.encode(warm)

    times: dict[str, list[float]] = {k: [] for k in runs}
    results: dict[str, torch.Tensor] = {}
    for r in range(args.repeats):  # interleaved, so drift on a shared machine hits every side
        for name, fn in runs.items():
            seconds, emb = timed(fn)
            times[name].append(seconds)
            results[name] = emb
            print(f"  run {r + 1} {name:18s} {len(sentences) / seconds:8.1f} sentences/s", file=sys.stderr)

    ref = results["transformers fp32"]
    base = len(sentences) / statistics.median(times["transformers fp32"])
    print(f"\n{'':18s} {'sentences/s':>12s} {'vs transformers fp32':>22s}  agreement")
    for name in runs:
        rate = len(sentences) / statistics.median(times[name])
        emb = results[name]
        if name == "transformers fp32":
            agree = "reference"
        elif name.endswith("fp32"):
            agree = f"max |diff| {float((emb - ref).abs().max()):.2e}"
        else:
            agree = f"min cosine {float((emb * ref).sum(-1).min()):.5f}"
        print(f"{name:18s} {rate:12.1f} {rate / base:21.2f}x  {agree}")


if __name__ == "__main__":
    main()
