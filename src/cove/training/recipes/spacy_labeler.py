"""Label sentences with a spaCy English pipeline; run by the NER recipe in a subprocess.

This file runs under a separate ``PYTHONPATH`` holding spaCy and its model (installed by the recipe into the
Cove data dir with pip), never in Cove's own process: spaCy's pinned numpy and friends stay out of Cove's
environment. It imports nothing from Cove.

    python spacy_labeler.py MODEL_PACKAGE IN.jsonl OUT.jsonl [--syntax]

IN holds one JSON string (a sentence) per line. OUT gets one object per input line, in order:
``{"tokens": [...], "entities": [[first_token, end_token, "SPACY_LABEL"], ...]}`` (end exclusive). With
``--syntax`` (the question-answering recipe) the tagger, parser and lemmatizer run too, and each object also
holds per token its character offset in the sentence (``idx``), ``tag``, ``pos``, ``lemma``, ``dep`` and
``head`` (a token index). Progress ("labelled N/M") goes to stderr.
"""

from __future__ import annotations

import json
import sys


def main(model_package: str, source: str, target: str, syntax: bool = False) -> None:
    import spacy

    # NER alone needs only the tokenizer and the entity recognizer (and the tok2vec it listens to)
    exclude = ["senter"] if syntax else ["parser", "tagger", "lemmatizer", "attribute_ruler", "senter"]
    nlp = spacy.load(model_package, exclude=exclude)
    with open(source, encoding="utf-8") as f:
        sentences = [json.loads(line) for line in f]
    total = len(sentences)
    with open(target, "w", encoding="utf-8") as out:
        for n, doc in enumerate(nlp.pipe(sentences, batch_size=256), start=1):
            keep = [t.i for t in doc if not t.is_space]
            index = {i: k for k, i in enumerate(keep)}
            tokens = [doc[i].text for i in keep]
            entities = []
            for ent in doc.ents:
                inside = [index[i] for i in range(ent.start, ent.end) if i in index]
                if inside:
                    entities.append([inside[0], inside[-1] + 1, ent.label_])
            row = {"tokens": tokens, "entities": entities}
            if syntax:
                row["idx"] = [doc[i].idx for i in keep]
                for key, attribute in (
                    ("tag", "tag_"),
                    ("pos", "pos_"),
                    ("lemma", "lemma_"),
                    ("dep", "dep_"),
                ):
                    row[key] = [getattr(doc[i], attribute) for i in keep]
                row["head"] = [index.get(doc[i].head.i, k) for k, i in enumerate(keep)]
            out.write(json.dumps(row) + "\n")
            if n % 1000 == 0 or n == total:
                print(f"labelled {n}/{total}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    args = sys.argv[1:]
    syntax = "--syntax" in args
    args = [a for a in args if a != "--syntax"]
    if len(args) != 3:
        sys.exit("usage: spacy_labeler.py MODEL_PACKAGE IN.jsonl OUT.jsonl [--syntax]")
    main(args[0], args[1], args[2], syntax=syntax)
