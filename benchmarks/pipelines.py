"""Headline figure: items/s per pipeline task, Cove vs transformers on the same checkpoint and inputs.

Checkpoints are all-MiniLM-L6-v2 (bundled, real weights) with a task head added (randomly initialised, with a
fixed seed, saved once and loaded by both libraries), so the compute is that of a real small encoder. Both
sides get the same batch_size. Runs are interleaved and repeated; medians are reported, with the ratio and a
check that the outputs agree (same labels/spans, scores within 1e-4). feature-extraction is compared on each
input's own token rows: at batch_size > 1 transformers pads every input's rows to its batch's longest, Cove
does not (see README, "Pipelines").

    python benchmarks/pipelines.py [--items 256] [--repeats 3] [--tasks text-classification,ner,...]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from cove.hardware import describe

NAME = "sentence-transformers/all-MiniLM-L6-v2"
WORDS = (
    "the a company city river people government market music film team player game science data model "
    "London Paris Berlin Sarah John Acme Google university research new old big small fast slow played "
    "built wrote found said announced visited loved hated watched in on at with from for of and but"
).split()


def sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = int(rng.lognormvariate(2.7, 0.6)) + 3  # mixed lengths, median ~18 words, long tail
        out.append(" ".join(rng.choice(WORDS) for _ in range(min(k, 200))).capitalize() + ".")
    return out


def build_models(root: Path) -> dict[str, str]:
    import transformers

    from cove.hub.bundled import bundled_path, find_bundled

    src = bundled_path(find_bundled(NAME))
    heads = {
        "seq": (transformers.AutoModelForSequenceClassification, ["NEGATIVE", "POSITIVE"]),
        "nli": (transformers.AutoModelForSequenceClassification, ["contradiction", "neutral", "entailment"]),
        "tok": (
            transformers.AutoModelForTokenClassification,
            ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"],
        ),
        "qa": (transformers.AutoModelForQuestionAnswering, None),
        "mlm": (transformers.AutoModelForMaskedLM, None),
    }
    out = {}
    tok = transformers.AutoTokenizer.from_pretrained(src)
    for head, (cls, labels) in heads.items():
        torch.manual_seed(0)
        kwargs = (
            {"id2label": dict(enumerate(labels)), "label2id": {v: i for i, v in enumerate(labels)}}
            if labels
            else {}
        )
        model = cls.from_pretrained(src, **kwargs)
        folder = root / head
        model.save_pretrained(folder)
        tok.save_pretrained(folder)
        out[head] = str(folder)
    return out


def close(a, b) -> bool:
    if isinstance(b, dict):
        return isinstance(a, dict) and set(a) == set(b) and all(close(a[k], b[k]) for k in b)
    if isinstance(b, (list, tuple)):
        return isinstance(a, (list, tuple)) and len(a) == len(b) and all(close(x, y) for x, y in zip(a, b))
    if isinstance(b, float) or type(b).__name__.startswith("float"):
        return abs(float(a) - float(b)) <= 1e-4
    return a == b


QA_REFERENCE = """
import json, sys, time
from transformers import pipeline
p = json.loads(sys.stdin.readline())
qa = pipeline("question-answering", model=p["model"], tokenizer=p["model"])
qa(question=p["questions"][:2], context=p["contexts"][:2], batch_size=p["batch_size"])
print("ready", flush=True)
out = None
for line in sys.stdin:  # one timed run per request, so that the caller can interleave its own runs
    t = time.perf_counter(); out = qa(question=p["questions"], context=p["contexts"], batch_size=p["batch_size"])
    print(json.dumps({"time": time.perf_counter() - t}), flush=True)
print(json.dumps({"out": json.loads(json.dumps(out, default=float))}), flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--tasks",
        default="feature-extraction,text-classification,ner,fill-mask,zero-shot-classification,question-answering",
    )
    args = parser.parse_args()

    import transformers

    import cove

    texts = sentences(args.items)
    masked = [t.replace(" the ", " [MASK] ", 1) if " the " in t else "[MASK] " + t for t in texts]
    contexts = [" ".join(sentences(6, seed=i)) for i in range(args.items // 4)]
    questions = [
        f"Who {random.Random(i).choice(['built', 'visited', 'wrote'])} it?" for i in range(len(contexts))
    ]
    tmp = tempfile.TemporaryDirectory()
    folders = build_models(Path(tmp.name))
    bs = args.batch_size
    from cove.hub.bundled import bundled_path, find_bundled

    minilm = str(bundled_path(find_bundled(NAME)))
    cases = {
        "feature-extraction": (minilm, "feature-extraction", texts, {}),
        "text-classification": (folders["seq"], "text-classification", texts, {}),
        "ner": (folders["tok"], "token-classification", texts, {"aggregation_strategy": "simple"}),
        "fill-mask": (folders["mlm"], "fill-mask", masked, {}),
        "zero-shot-classification": (
            folders["nli"],
            "zero-shot-classification",
            texts[: args.items // 4],
            {"candidate_labels": ["sports", "politics", "music", "science"]},
        ),
    }
    print(f"hardware: {describe()}")
    print(
        f"{args.items} mixed-length sentences (median {statistics.median(len(t.split()) for t in texts)} words), "
        f"batch_size {bs} on both sides, {args.repeats} interleaved repeats, medians; torch threads "
        f"{torch.get_num_threads()}\n"
    )
    print(f"{'task':26s} {'transformers/s':>15s} {'cove/s':>10s} {'ratio':>7s}  outputs")
    for task in args.tasks.split(","):
        if task == "question-answering":
            ref_dir = Path(sys.prefix) / "ref-transformers4"
            if not (ref_dir / "transformers").is_dir():
                print(f"{task:26s} skipped: transformers 4.57.6 side folder missing (scripts/setup.sh)")
                continue
            import os

            ours = cove.pipeline(task, model=folders["qa"], batch_size=bs)
            ours(question=questions[:2], context=contexts[:2])
            cove_times = []
            payload = {
                "model": folders["qa"],
                "questions": questions,
                "contexts": contexts,
                "batch_size": bs,
            }
            env = {**os.environ, "PYTHONPATH": str(ref_dir), "TRANSFORMERS_VERBOSITY": "error"}
            proc = subprocess.Popen(
                [sys.executable, "-c", QA_REFERENCE],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write(json.dumps(payload) + "\n")
            proc.stdin.flush()
            while (line := proc.stdout.readline()).strip() != "ready":
                if not line:
                    raise SystemExit("the transformers 4.57.6 reference process ended early (see its stderr)")
            ref_times = []
            for _ in range(args.repeats):  # interleaved: one reference run, then one Cove run
                proc.stdin.write("run\n")
                proc.stdin.flush()
                ref_times.append(json.loads(proc.stdout.readline())["time"])
                t = time.perf_counter()
                got = ours(question=questions, context=contexts)
                cove_times.append(time.perf_counter() - t)
            ref_out, _ = proc.communicate("")
            ref = json.loads(ref_out.strip().splitlines()[-1])
            n = len(questions)
            r_rate, c_rate = n / statistics.median(ref_times), n / statistics.median(cove_times)
            print(
                f"{task + ' (tf 4.57.6)':26s} {r_rate:15.1f} {c_rate:10.1f} {c_rate / r_rate:6.2f}x  "
                f"{'equal' if close(got, ref['out']) else 'DIFFERENT'}"
            )
            continue
        folder, ref_task, inputs, params = cases[task]
        ref = transformers.pipeline(ref_task, model=folder, tokenizer=folder, batch_size=bs)
        ours = cove.pipeline(task, model=folder, batch_size=bs)
        ref(inputs[:4], **params)
        ours(inputs[:4], **params)
        times = {"transformers": [], "cove": []}
        outs = {}
        for _ in range(args.repeats):
            for side, pipe in (("transformers", ref), ("cove", ours)):
                t = time.perf_counter()
                outs[side] = pipe(inputs, **params)
                times[side].append(time.perf_counter() - t)
        r_rate = len(inputs) / statistics.median(times["transformers"])
        c_rate = len(inputs) / statistics.median(times["cove"])
        expected = outs["transformers"]
        if task == "feature-extraction":
            # transformers returns each input's rows padded to its batch's longest (issue #21202: the padding
            # depends on the batch neighbours); Cove returns the input's own tokens. Compare those rows, cut
            # by transformers' own tokenizer's count; Cove must return exactly that many.
            counts = [len(ids) for ids in ref.tokenizer(inputs, truncation=True)["input_ids"]]
            expected = [[rows[0][:n]] for rows, n in zip(expected, counts)]
        same = close(outs["cove"], expected)
        print(
            f"{task:26s} {r_rate:15.1f} {c_rate:10.1f} {c_rate / r_rate:6.2f}x  {'equal' if same else 'DIFFERENT'}"
        )


if __name__ == "__main__":
    main()
