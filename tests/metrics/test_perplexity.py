"""perplexity on a stand-in causal LM whose perplexities are computed by hand."""

from __future__ import annotations

import itertools
import math

import pytest

import cove
from cove.errors import MetricError

torch = pytest.importorskip("torch")

VOCAB = 5  # 0 = BOS, 1..4 = letters a..d
# Bigram table: the logits for the next token depend only on the current one.
TABLE = [
    [0.0, 2.0, 0.5, -1.0, 0.3],
    [0.1, -0.5, 1.5, 0.0, 0.7],
    [1.0, 0.2, -0.3, 2.2, 0.0],
    [-1.0, 0.0, 0.4, 0.1, 1.9],
    [0.5, 0.5, 0.5, -2.0, 0.0],
]


class BigramLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.nn.Embedding(VOCAB, VOCAB)
        with torch.no_grad():
            self.table.weight.copy_(torch.tensor(TABLE))
        self.dropout = torch.nn.Dropout(0.5)  # must be off while scoring
        self.seen_masks = []

    def forward(self, input_ids=None, attention_mask=None, labels=None):
        self.seen_masks.append(attention_mask.clone())

        class Out:
            logits = self.dropout(self.table(input_ids))  # (batch, seq, vocab)

        return Out()


class CharTokenizer:
    bos_token_id = 0
    pad_token_id = None

    def __call__(self, texts, add_special_tokens=True):
        assert add_special_tokens is False
        return {"input_ids": [[ord(c) - ord("a") + 1 for c in t] for t in texts]}


def hand_perplexity(text, add_start_token=True):
    ids = [ord(c) - ord("a") + 1 for c in text]
    if add_start_token:
        ids = [0, *ids]
    nlls = []
    for prev, nxt in itertools.pairwise(ids):
        row = TABLE[prev]
        log_z = math.log(sum(math.exp(v) for v in row))
        nlls.append(log_z - row[nxt])
    return math.exp(sum(nlls) / len(nlls))


def test_perplexity_matches_hand_computation_with_batching_and_padding():
    model = BigramLM()
    model.train()
    texts = ["abcd", "a", "dcbaab", "bb"]
    metric = cove.load_metric("perplexity")
    out = metric.compute(predictions=texts, model=model, tokenizer=CharTokenizer(), batch_size=3)
    expected = [hand_perplexity(t) for t in texts]
    assert out["perplexities"] == pytest.approx(expected, rel=1e-6)
    assert out["mean_perplexity"] == pytest.approx(sum(expected) / len(expected), rel=1e-6)
    assert model.training  # restored
    # right padding in the first batch: the mask marks BOS + real tokens only
    assert model.seen_masks[0].tolist() == [
        [1, 1, 1, 1, 1, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 1, 1, 1, 1],
    ]
    one_by_one = metric.compute(predictions=texts, model=model, tokenizer=CharTokenizer(), batch_size=1)
    assert one_by_one["perplexities"] == pytest.approx(out["perplexities"], rel=1e-6)


def test_perplexity_without_start_token_and_truncation():
    model = BigramLM().eval()
    out = cove.load_metric("perplexity").compute(
        predictions=["abcd", "dcb"], model=model, tokenizer=CharTokenizer(), add_start_token=False
    )
    assert out["perplexities"] == pytest.approx(
        [hand_perplexity("abcd", False), hand_perplexity("dcb", False)], rel=1e-6
    )
    truncated = cove.load_metric("perplexity").compute(
        predictions=["abcd"], model=model, tokenizer=CharTokenizer(), max_length=3
    )  # BOS + first two tokens
    assert truncated["perplexities"] == pytest.approx([hand_perplexity("ab")], rel=1e-6)


def test_perplexity_errors():
    model, tok = BigramLM(), CharTokenizer()
    metric = cove.load_metric("perplexity")
    with pytest.raises(MetricError, match="at least two tokens"):
        metric.compute(predictions=["a"], model=model, tokenizer=tok, add_start_token=False)
    with pytest.raises(MetricError, match="at least one token"):
        metric.compute(predictions=[""], model=model, tokenizer=tok)
    with pytest.raises(MetricError, match="model="):
        metric.compute(predictions=["ab"], tokenizer=tok)
    with pytest.raises(MetricError, match="takes no references"):
        metric.compute(predictions=["ab"], references=["ab"], model=model, tokenizer=tok)


def test_perplexity_resolves_a_model_name_through_the_public_api(monkeypatch):
    loaded = []

    class FakeAutoModel:
        @staticmethod
        def from_pretrained(name):
            loaded.append(("model", name))
            return BigramLM()

    class FakeAutoTokenizer:
        @staticmethod
        def from_pretrained(name):
            loaded.append(("tokenizer", name))
            return CharTokenizer()

    # setitem on the module dict: getattr would trigger the lazy import of models that may not exist yet
    monkeypatch.setitem(vars(cove), "AutoModelForCausalLM", FakeAutoModel)
    monkeypatch.setitem(vars(cove), "AutoTokenizer", FakeAutoTokenizer)
    out = cove.load_metric("perplexity").compute(predictions=["abc"], model_id="tiny/bigram")
    assert loaded == [("model", "tiny/bigram"), ("tokenizer", "tiny/bigram")]
    assert out["perplexities"] == pytest.approx([hand_perplexity("abc")], rel=1e-6)
