"""Every pipeline task and option against transformers' pipeline on the same checkpoint and inputs:
same keys, same labels and spans, scores within 1e-4."""

from __future__ import annotations

import json

import pytest

import cove
from tests.pipelines.conftest import NER_LABELS

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

TEXTS = [
    "I love this library, it's great!",
    "Hugging Face Inc. is a company based in New York City. Its headquarters are in DUMBO.",
    "Sarah lives in London and works for Acme Corporation.",
    "Ça marche très bien à Zürich, São Paulo et Genève.",
    "東京と大阪で会議があります。",
    "short",
    "a " * 700,  # longer than the model: truncated
]
FAMILIES = ["bert", "distilbert", "roberta"]


def assert_same(got, ref, path="result"):
    """Recursive equality with float tolerance, same keys, JSON-serialisable."""
    if isinstance(ref, dict):
        assert isinstance(got, dict), f"{path}: {type(got)}"
        assert set(got) == set(ref), f"{path}: keys {sorted(got)} != {sorted(ref)}"
        for k in ref:
            assert_same(got[k], ref[k], f"{path}.{k}")
    elif isinstance(ref, (list, tuple)):
        assert isinstance(got, (list, tuple)) and len(got) == len(ref), (
            f"{path}: {got!r:.200} vs {ref!r:.200}"
        )
        for i, (a, b) in enumerate(zip(got, ref)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(ref, float) or type(ref).__name__.startswith("float"):
        assert got == pytest.approx(float(ref), abs=1e-4), f"{path}: {got} != {ref}"
    else:
        assert got == ref, f"{path}: {got!r} != {ref!r}"


def run_both(task, folder, inputs, ref_task=None, **params):
    ref = transformers.pipeline(ref_task or task, model=folder, tokenizer=folder)
    ours = cove.pipeline(task, model=folder)
    expected = ref(inputs, **params)
    got = ours(inputs, **params)
    json.dumps(got)
    return got, expected


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("params", [{}, {"top_k": None}, {"top_k": 2}, {"function_to_apply": "sigmoid"}])
def test_text_classification(models, family, params):
    folder = models(family, "seq", ["NEGATIVE", "NEUTRAL", "POSITIVE"])
    texts = TEXTS[:-1]  # transformers does not truncate by default; Cove does (tested below)
    got, ref = run_both("text-classification", folder, texts, **params)
    assert_same(got, ref)
    got, ref = run_both("sentiment-analysis", folder, texts[0], ref_task="text-classification", **params)
    assert_same(got, ref)


@pytest.mark.parametrize("family", ["bert", "distilbert"])
def test_text_pairs_and_truncation(models, family):
    folder = models(family, "seq", ["NEGATIVE", "POSITIVE"])
    ref = transformers.pipeline("text-classification", model=folder, tokenizer=folder)
    ours = cove.pipeline("text-classification", model=folder)
    pair = {"text": "A man is eating.", "text_pair": "Someone eats food."}
    assert_same(ours(pair), ref(pair))
    assert_same(ours([pair, pair]), ref([pair, pair]))
    long = TEXTS[-1]
    assert_same(ours(long), ref(long, truncation=True))


def test_multi_label_and_regression(models, tmp_path):
    folder = models("bert", "seq", ["toxic", "rude", "funny"])
    import shutil

    for problem in ("multi_label_classification", "regression"):
        target = tmp_path / problem
        shutil.copytree(folder, target)
        config = json.loads((target / "config.json").read_text())
        config["problem_type"] = problem
        (target / "config.json").write_text(json.dumps(config))
        got, ref = run_both("text-classification", str(target), TEXTS[:3], top_k=None)
        assert_same(got, ref)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("strategy", ["none", "simple", "first", "average", "max"])
def test_token_classification(models, family, strategy):
    folder = models(family, "tok", NER_LABELS)
    got, ref = run_both("token-classification", folder, TEXTS[:5], aggregation_strategy=strategy)
    assert_same(got, ref)
    got, ref = run_both(
        "ner", folder, TEXTS[1], ref_task="token-classification", aggregation_strategy=strategy
    )
    assert_same(got, ref)


def _fold(s: str) -> str:
    """Lowercase and strip accents, as the uncased WordPiece tokenizer does to the words it returns."""
    import unicodedata

    return "".join(c for c in unicodedata.normalize("NFD", s.lower()) if unicodedata.category(c) != "Mn")


def test_token_classification_offsets_are_character_offsets(models):
    folder = models("bert", "tok", NER_LABELS)
    ner = cove.pipeline("ner", model=folder)
    seen = 0
    for text in TEXTS[3:5]:
        for entity in ner(text, ignore_labels=[]):
            word = entity["word"].replace("##", "")
            if word != "[UNK]":
                assert _fold(text[entity["start"] : entity["end"]]) == _fold(word), entity
                seen += 1
    assert seen > 10


def test_grouped_entities_is_simple(models):
    folder = models("bert", "tok", NER_LABELS)
    ours = cove.pipeline("ner", model=folder)
    assert ours(TEXTS[1], grouped_entities=True) == ours(TEXTS[1], aggregation_strategy="simple")
    grouped = cove.pipeline("ner", model=folder, grouped_entities=True)(TEXTS[1])
    assert grouped and all("entity_group" in e for e in grouped)


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_token_classification_stride(models, family):
    folder = models(family, "tok", NER_LABELS)
    text = " ".join(TEXTS[1:3]) * 8
    ref = transformers.pipeline("token-classification", model=folder, tokenizer=folder)
    ours = cove.pipeline("token-classification", model=folder)
    ref.tokenizer.model_max_length = ours.tokenizer.model_max_length = 64
    assert_same(
        ours(text, aggregation_strategy="first", stride=16),
        ref(text, aggregation_strategy="first", stride=16),
    )


def test_token_classification_split_into_words(models):
    folder = models("bert", "tok", NER_LABELS)
    words = ["Sarah", "lives", "in", "London", "."]
    got, ref = run_both(
        "token-classification", folder, words, is_split_into_words=True, aggregation_strategy="simple"
    )
    assert_same(got, ref)


@pytest.mark.parametrize("family", FAMILIES)
def test_fill_mask(models, family):
    folder = models(family, "mlm")
    mask = "[MASK]" if family != "roberta" else "<mask>"
    texts = [f"Paris is the {mask} of France.", f"The {mask} brown fox {mask} over the dog."]
    for params in ({}, {"top_k": 3}):
        got, ref = run_both("fill-mask", folder, texts, **params)
        assert_same(got, ref)
        got, ref = run_both("fill-mask", folder, texts[0], **params)
        assert_same(got, ref)
    # tokens of the vocabulary, plus a word that is not one (both sides fall back to its first token)
    words = transformers.AutoTokenizer.from_pretrained(folder).tokenize(" the capital of France")
    targets = [*words[:3], "zebra"]
    got, ref = run_both("fill-mask", folder, texts[0], targets=targets)
    assert_same(got, ref)


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("multi_label", [False, True])
def test_zero_shot(models, family, multi_label):
    folder = models(family, "seq", ["contradiction", "neutral", "entailment"])
    labels = ["politics", "sports", "cooking"]
    got, ref = run_both(
        "zero-shot-classification", folder, TEXTS[:3], candidate_labels=labels, multi_label=multi_label
    )
    assert_same(got, ref)
    got, ref = run_both(
        "zero-shot-classification",
        folder,
        TEXTS[0],
        candidate_labels="travel, food",
        hypothesis_template="This text is about {}.",
    )
    assert_same(got, ref)
