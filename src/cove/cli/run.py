"""``cove run TASK INPUT...`` and ``cove similarity``: run a pipeline from the command line, JSON out."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from cove.errors import PipelineError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run",
        help="run a pipeline task on text and print JSON",
        description="Examples: cove run sentiment-analysis 'I love it' | cove run question-answering "
        "--question 'Who?' --context 'Ann wrote it.' --model ./my-qa | cove run ner - < lines.txt | "
        "cove run summarization 'A long text ...' --model ./my-t5",
    )
    p.add_argument(
        "task",
        help="task name, e.g. feature-extraction, sentiment-analysis, ner, question-answering, summarization, "
        "translation_en_to_de, text2text-generation",
    )
    p.add_argument("inputs", nargs="*", help="input texts ('-' reads one input per line from stdin)")
    p.add_argument("--model", default=None, help="model name or folder (default: the task's default model)")
    p.add_argument("--question", action="append", help="question-answering: a question (repeatable)")
    p.add_argument("--context", help="question-answering: the context")
    p.add_argument(
        "--dtype",
        default=None,
        help="float32, bfloat16, or auto (the checkpoint's dtype, but float32 where this CPU emulates bf16); "
        "default: the stored dtype, float32 instead of an emulated bf16",
    )
    p.add_argument(
        "--quantization",
        choices=["int8", "int4", "gguf"],
        default=None,
        help="quantized weights: int8 (Q8_0 blocks) or int4 (Q4_1 groups of 32) quantized on load, or gguf "
        "(a GGUF model's blocks as stored); the matmuls read the packed weights",
    )
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='a task parameter; VALUE is read as JSON when it parses (top_k=3, candidate_labels=\'["a","b"]\')',
    )
    p.add_argument("--summary", action="store_true", help="feature-extraction: print shapes and a few values")
    p.set_defaults(func=_run)

    s = sub.add_parser("similarity", help="rank candidate sentences by cosine similarity to a source")
    s.add_argument("source")
    s.add_argument("candidates", nargs="+")
    s.add_argument("--model", default=None)
    s.set_defaults(func=_similarity)


def _params(pairs: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise PipelineError(f"--param takes KEY=VALUE, got {pair!r}.")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _run(args: argparse.Namespace) -> int:
    from cove.pipelines import pipeline

    params = _params(args.param)
    texts = args.inputs
    if texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    pipe = pipeline(
        args.task,
        model=args.model,
        dtype=args.dtype,
        batch_size=args.batch_size,
        quantization=args.quantization,
    )
    if args.task == "question-answering":
        if not args.question or args.context is None:
            raise PipelineError("question-answering needs --question and --context.")
        question = args.question if len(args.question) > 1 else args.question[0]
        result = pipe(question=question, context=args.context, **params)
    else:
        if not texts:
            raise PipelineError(f"Give {args.task} some input text (or '-' to read lines from stdin).")
        result = pipe(texts if len(texts) > 1 else texts[0], **params)
    if args.summary and args.task == "feature-extraction":
        result = _summarise(result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _summarise(vectors: Any) -> Any:
    rows = vectors if isinstance(vectors[0][0][0], list) else [vectors]
    out = [
        {"tokens": len(r[0]), "dim": len(r[0][0]), "first_values": [round(v, 4) for v in r[0][0][:4]]}
        for r in rows
    ]
    return out if len(out) > 1 else out[0]


def _similarity(args: argparse.Namespace) -> int:
    from cove.pipelines import pipeline

    pipe = pipeline("sentence-similarity", model=args.model)
    scores = pipe(args.source, args.candidates)
    ranked = sorted(zip(args.candidates, scores), key=lambda kv: -kv[1])
    print(f"source: {args.source}")
    print(
        json.dumps([{"sentence": c, "score": round(s, 4)} for c, s in ranked], indent=2, ensure_ascii=False)
    )
    return 0
