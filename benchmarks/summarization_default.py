"""Which summarizer is Cove's default: the two offline candidates side by side on ACLSum.

- abstractive: the bundled SmolLM2-135M-Instruct, prompted (chat template) to summarize the abstract in
  three sentences (problem, approach, result), greedy, at most 96 new tokens;
- extractive: the default `pipeline("summarization")`, the three abstract sentences nearest the abstract's
  mean all-MiniLM-L6-v2 embedding (cove/training/recipes/summarization.py).

Input: each paper's abstract; reference: its three expert summaries (challenge, approach, outcome).
Prints ROUGE-1/2/L (rouge-score, no stemming) and seconds per paper for each, and the CPU.

    python benchmarks/summarization_default.py [--split test|val|train] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cove.hardware import describe
from cove.training.recipes import data_dir
from cove.training.recipes import summarization as recipe

PROMPT = (
    "Summarize this paper abstract in three sentences: the problem it addresses, the approach, and the "
    "result.\n\n{}"
)
LM = "HuggingFaceTB/SmolLM2-135M-Instruct"


def abstractive(texts: list[str], timings: list[float]) -> list[str]:
    import torch

    import cove

    tokenizer = cove.AutoTokenizer.from_pretrained(LM)
    model = cove.AutoModelForCausalLM.from_pretrained(LM, dtype=torch.float32).eval()
    out = []
    for text in texts:
        started = time.perf_counter()
        ids = tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT.format(text)}],
            add_generation_prompt=True,
            return_tensors="pt",
        )
        ids = ids if torch.is_tensor(ids) else ids["input_ids"]
        generated = model.generate(ids, max_new_tokens=96, do_sample=False)
        out.append(tokenizer.decode(generated[0, ids.shape[1] :], skip_special_tokens=True).strip())
        timings.append(time.perf_counter() - started)
    return out


def extractive(texts: list[str], timings: list[float], folder: Path) -> list[str]:
    import cove

    pipe = cove.pipeline("summarization", model=str(folder))
    out = []
    for text in texts:
        started = time.perf_counter()
        out.append(pipe(text)[0]["summary_text"])
        timings.append(time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--split", default="test", choices=["train", "val", "test"])
    parser.add_argument("--limit", type=int, default=0, help="first N papers only (0: all)")
    args = parser.parse_args()
    rows = recipe.load_split(data_dir() / "downloads", args.split)
    if args.limit:
        rows = rows[: args.limit]
    print(f"ACLSum {args.split}: {len(rows)} papers; {describe()}")
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "extractive"
        recipe.write_model(folder)
        results = {}
        for name, run in (
            ("extractive (MiniLM centrality, 3 sentences)", lambda t, s: extractive(t, s, folder)),
            ("abstractive (SmolLM2-135M-Instruct, prompted)", abstractive),
        ):
            timings: list[float] = []
            scores = recipe.score(lambda texts, run=run, timings=timings: run(texts, timings), rows)
            results[name] = scores
            print(
                f"{name:48} ROUGE-1 {scores['rouge1']:.4f}  ROUGE-2 {scores['rouge2']:.4f}  "
                f"ROUGE-L {scores['rougeL']:.4f}  {statistics.median(timings):.3f} s/paper (median)",
                flush=True,
            )
    best = max(results, key=lambda k: results[k]["rougeL"])
    print(f"higher ROUGE-L: {best}")


if __name__ == "__main__":
    main()
