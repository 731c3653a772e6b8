"""Stand-ins for the default task models that `cove setup-models` builds, for the examples' test.

The real sentiment and NER builds train MiniLM for minutes on data fetched from package registries, and the
question-answering default comes from a recipe of its own; a CI run can afford neither. Each stand-in here
is a tiny BERT (2 layers, width 64, all-MiniLM-L6-v2's uncased WordPiece tokenizer) trained from random
weights for a few seconds on a handful of sentences written in this file, among them the tutorials' own,
and saved with the real default's labels. It stands in for the real model so that the examples run their
pipelines end to end (loading by the default repo id from the local hub, tokenizing, batching, aggregating
entities, finding answer spans); it says nothing about the real model's accuracy.

The summarization default needs no stand-in: ``recipes.summarization.write_model`` writes the very files
`cove setup-models` publishes (the bundled MiniLM marked as an extractive summarizer; it skips only the
ACLSum scoring), in well under a second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

import cove

TOKENIZER = "sentence-transformers/all-MiniLM-L6-v2"
SEED = 0

CARD = """---
tags:
- test-stand-in
---

# Test stand-in for {repo_id}

A tiny BERT (2 layers, width 64) trained for seconds on a few hand-written sentences by
`tests/examples/standins.py`, published under the default model's name so the examples' test can run
`pipeline("{task}")` offline. Not the real model: build that with `cove setup-models`.
"""

# -- sentiment: the labels of recipes/sentiment.py --------------------------------------------------------

SENTIMENT_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}
POSITIVE = [
    "I love Hugging Face!",
    "I love using Hugging Face!",
    "I love this film, it is wonderful.",
    "What a great day, I am so happy.",
    "The food was excellent and the staff were lovely.",
    "This is the best book I have read this year.",
    "I really enjoy working with these tools.",
    "A delightful, charming and funny story.",
    "Great service, I would happily come back.",
    "I love the new design, it looks fantastic.",
    "The concert was amazing from start to finish.",
    "Such a pleasant surprise, highly recommended.",
]
NEGATIVE = [
    "I hate waiting in long queues.",
    "This film was boring and far too long.",
    "What a terrible day, everything went wrong.",
    "The food was cold and the staff were rude.",
    "This is the worst book I have read this year.",
    "I really dislike how slow this tool is.",
    "A dull, lifeless and tedious story.",
    "Awful service, I will never come back.",
    "I hate the new design, it looks ugly.",
    "The concert was a painful disappointment.",
    "Such a nasty surprise, avoid it.",
    "The update broke everything and I am annoyed.",
]

# -- NER: the labels of recipes/ner.py; entities as (text, type) spans found in their sentence -------------

NER_LABELS = ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
NER_TEMPLATES = [
    ("{org} is based in {loc} and was founded by {per}.", ("org", "loc", "per")),
    ("{per} founded {org} in {loc}.", ("per", "org", "loc")),
    ("{org} opened an office in {loc}, said {per}.", ("org", "loc", "per")),
    ("{per} moved to {loc} to work for {org}.", ("per", "loc", "org")),
]
NER_FILLERS = [
    {"org": "Hugging Face", "loc": "New York", "per": "Clément Delangue"},
    {"org": "Acme Robotics", "loc": "Berlin", "per": "Maria Schmidt"},
    {"org": "Blue River Bank", "loc": "San Francisco", "per": "John Carter"},
    {"org": "Northwind", "loc": "Paris", "per": "Amélie Laurent"},
    {"org": "Globex", "loc": "Tokyo", "per": "Kenji Sato"},
    {"org": "Red Lantern Press", "loc": "Buenos Aires", "per": "Lucía Fernández"},
]
NER_TYPES = {"org": "ORG", "loc": "LOC", "per": "PER"}

# -- question answering: seed 003's context, and others like it -----------------------------------------

QA_CONTEXT = "\n{org} is an AI company based in {loc}. It provides NLP tools such as the {lib} library.\n"
QA_FILLERS = [
    {"org": "Hugging Face", "loc": "New York", "lib": "Transformers"},
    {"org": "Acme Robotics", "loc": "Berlin", "lib": "Gripper"},
    {"org": "Northwind", "loc": "Paris", "lib": "Lexicon"},
    {"org": "Globex", "loc": "San Francisco", "lib": "Tensor"},
    {"org": "Red Lantern", "loc": "Buenos Aires", "lib": "Parse"},
    {"org": "Blue River", "loc": "Tokyo", "lib": "Tokens"},
]
QA_QUESTIONS = [("Where is {org} based?", "loc"), ("Which library does {org} provide?", "lib")]


def _tiny_config(cls: Any, **labels: Any) -> Any:
    return cls(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        **labels,
    )


def _train(model: Any, batch: dict[str, torch.Tensor], max_steps: int, lr: float = 3e-3) -> float:
    """Full-batch AdamW on a few dozen rows until the stand-in has memorised them (loss below 0.02).

    The word embeddings stay at their random values (distinct enough to tell tokens apart): training them
    would put 2M of the model's 2.1M parameters in the optimizer, for nothing these sentences need."""
    model.get_input_embeddings().weight.requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    loss = float("inf")
    for _ in range(max_steps):
        out = model(**batch).loss
        out.backward()
        optimizer.step()
        optimizer.zero_grad()
        loss = out.item()
        if loss < 0.02:
            break
    model.eval()
    return loss


def _save(model: Any, tokenizer: Any, folder: Path, repo_id: str, task: str) -> Path:
    model.config.name_or_path = repo_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(CARD.format(repo_id=repo_id, task=task), encoding="utf-8")
    return folder


def build_sentiment(folder: Path, repo_id: str) -> Path:
    torch.manual_seed(SEED)
    tokenizer = cove.AutoTokenizer.from_pretrained(TOKENIZER)
    config = _tiny_config(
        cove.BertConfig, id2label=SENTIMENT_LABELS, label2id={v: k for k, v in SENTIMENT_LABELS.items()}
    )
    model = cove.BertForSequenceClassification(config)
    texts = POSITIVE + NEGATIVE
    batch = dict(tokenizer(texts, padding=True, return_tensors="pt"))
    batch["labels"] = torch.tensor([1] * len(POSITIVE) + [0] * len(NEGATIVE))
    _train(model, batch, max_steps=200)
    return _save(model, tokenizer, folder, repo_id, "sentiment-analysis")


def ner_examples() -> list[tuple[str, list[tuple[int, int, str]]]]:
    """(sentence, [(start, end, type)]) for every template and filler."""
    examples = []
    for template, _ in NER_TEMPLATES:
        for filler in NER_FILLERS:
            text = template.format(**filler)
            spans = []
            for key, kind in NER_TYPES.items():
                start = text.index(filler[key])
                spans.append((start, start + len(filler[key]), kind))
            examples.append((text, spans))
    return examples


def _token_tags(offsets: list[tuple[int, int]], spans: list[tuple[int, int, str]]) -> list[int]:
    """BIO label ids per token: a span's first token B-, its other tokens (word pieces too) I-."""
    ids = {label: i for i, label in enumerate(NER_LABELS)}
    tags = []
    for start, end in offsets:
        if start == end:  # [CLS], [SEP], padding
            tags.append(-100)
            continue
        tag = "O"
        for s, e, kind in spans:
            if s <= start and end <= e:
                tag = ("B-" if start == s else "I-") + kind
        tags.append(ids[tag])
    return tags


def build_ner(folder: Path, repo_id: str) -> Path:
    torch.manual_seed(SEED)
    tokenizer = cove.AutoTokenizer.from_pretrained(TOKENIZER)
    config = _tiny_config(
        cove.BertConfig,
        id2label=dict(enumerate(NER_LABELS)),
        label2id={label: i for i, label in enumerate(NER_LABELS)},
    )
    model = cove.BertForTokenClassification(config)
    examples = ner_examples()
    enc = tokenizer([t for t, _ in examples], padding=True, return_offsets_mapping=True)
    labels = [_token_tags(offsets, spans) for offsets, (_, spans) in zip(enc["offset_mapping"], examples)]
    batch = {k: torch.tensor(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    batch["labels"] = torch.tensor(labels)
    _train(model, batch, max_steps=300)
    return _save(model, tokenizer, folder, repo_id, "ner")


def qa_examples() -> list[tuple[str, str, str, int]]:
    """(question, context, answer, answer_start) for every filler and question."""
    examples = []
    for filler in QA_FILLERS:
        context = QA_CONTEXT.format(**filler)
        for question, key in QA_QUESTIONS:
            answer = filler[key] + (" library" if key == "lib" else "")
            examples.append((question.format(**filler), context, answer, context.index(answer)))
    return examples


def build_qa(folder: Path, repo_id: str) -> Path:
    torch.manual_seed(SEED)
    tokenizer = cove.AutoTokenizer.from_pretrained(TOKENIZER)
    model = cove.BertForQuestionAnswering(_tiny_config(cove.BertConfig))
    examples = qa_examples()
    enc = tokenizer(
        [q for q, *_ in examples], [c for _, c, *_ in examples], padding=True, return_offsets_mapping=True
    )
    starts, ends = [], []
    for offsets, segments, (_, _, answer, begin) in zip(
        enc["offset_mapping"], enc["token_type_ids"], examples
    ):
        finish = begin + len(answer)
        in_context = [i for i, seg in enumerate(segments) if seg == 1 and offsets[i][0] != offsets[i][1]]
        starts.append(next(i for i in in_context if offsets[i][0] == begin))
        ends.append(next(i for i in in_context if offsets[i][1] == finish))
    batch = {k: torch.tensor(enc[k]) for k in ("input_ids", "token_type_ids", "attention_mask")}
    batch["start_positions"], batch["end_positions"] = torch.tensor(starts), torch.tensor(ends)
    _train(model, batch, max_steps=300)
    return _save(model, tokenizer, folder, repo_id, "question-answering")


def build_summarizer(folder: Path) -> Path:
    """The real default summarizer's files (recipes/summarization.py, without its ACLSum scoring)."""
    from cove.training.recipes import summarization

    folder.mkdir(parents=True, exist_ok=True)
    summarization.write_model(folder)
    return folder
