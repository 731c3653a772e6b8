"""``cove run TASK INPUT...`` and ``cove similarity``: run a model from the command line, JSON out."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run a task on text and print JSON")
    p.add_argument("task", help="task name, e.g. feature-extraction")
    p.add_argument("inputs", nargs="+", help="input texts")
    p.add_argument("--model", default=None, help="model name or path (default: the task's default model)")
    p.add_argument("--summary", action="store_true", help="print shapes and a few values, not full vectors")
    p.set_defaults(func=_run)

    s = sub.add_parser("similarity", help="rank candidate sentences by cosine similarity to a source")
    s.add_argument("source")
    s.add_argument("candidates", nargs="+")
    s.add_argument("--model", default=None)
    s.set_defaults(func=_similarity)


def _run(args: argparse.Namespace) -> int:
    from cove.pipelines import pipeline

    pipe = pipeline(args.task, model=args.model)
    result = pipe(args.inputs if len(args.inputs) > 1 else args.inputs[0])
    if args.summary and args.task == "feature-extraction":
        result = _summarise(result)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0


def _summarise(vectors):
    rows = vectors if vectors and isinstance(vectors[0], list) and isinstance(vectors[0][0], list) else [vectors]
    out = []
    for row in rows:
        out.append({"tokens": len(row), "dim": len(row[0]), "first_values": [round(v, 4) for v in row[0][:4]]})
    return out if len(out) > 1 else out[0]


def _similarity(args: argparse.Namespace) -> int:
    from cove.pipelines import pipeline

    pipe = pipeline("sentence-similarity", model=args.model)
    scores = pipe(args.source, args.candidates)
    ranked = sorted(zip(args.candidates, scores), key=lambda kv: -kv[1])
    print(json.dumps([{"sentence": c, "score": round(s, 4)} for c, s in ranked], indent=2, ensure_ascii=False))
    return 0
