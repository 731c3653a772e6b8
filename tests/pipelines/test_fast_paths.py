"""The pipelines' fast paths (work skipped or vectorised for speed) give transformers' outputs: batched, on
mixed lengths, against the reference run on the same inputs."""

from __future__ import annotations

import pytest
import torch

import cove
from tests.pipelines.test_pipelines_parity import FAMILIES, assert_same

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

MIXED = [
    "Paris is the {m} of France.",
    "The {m} brown fox {m} over the lazy dog near the river bank, and then it slept for a long while.",
    "{m}",
    "Sarah lives in London and works for {m} Corporation since 2019; her brother works in {m} too.",
    "It is {m}.",
    "A much longer sentence that goes on and on about the weather, the market, the city and the {m} river.",
]


def masked_texts(family):
    mask = "[MASK]" if family != "roberta" else "<mask>"
    return [t.format(m=mask) for t in MIXED]


@pytest.mark.parametrize("family", FAMILIES)
def test_masked_lm_logits_is_the_models_head(models, family):
    folder = models(family, "mlm")
    model = cove.AutoModelForMaskedLM.from_pretrained(folder).eval()
    ids = torch.randint(5, 300, (3, 9))
    with torch.inference_mode():
        full = model(input_ids=ids).logits
        hidden = getattr(model, model.base_model_prefix)(input_ids=ids).last_hidden_state
        rows = model.masked_lm_logits(hidden[:, [2, 5]])
    torch.testing.assert_close(rows, full[:, [2, 5]], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("params", [{}, {"top_k": 3}])
def test_fill_mask_batched_mixed_lengths(models, family, params):
    folder = models(family, "mlm")
    texts = masked_texts(family)
    ref = transformers.pipeline("fill-mask", model=folder, tokenizer=folder)
    expected = ref(texts, **params)
    for batch_size in (1, 4):
        ours = cove.pipeline("fill-mask", model=folder, batch_size=batch_size)
        assert_same(ours(texts, **params), expected)


def test_fill_mask_targets_batched(models):
    folder = models("bert", "mlm")
    texts = masked_texts("bert")
    targets = ["the", "city", "river", "zebra", "capital"]
    ref = transformers.pipeline("fill-mask", model=folder, tokenizer=folder)
    ours = cove.pipeline("fill-mask", model=folder, batch_size=4)
    assert_same(ours(texts, targets=targets, top_k=2), ref(texts, targets=targets, top_k=2))
    assert_same(ours(texts, targets="city"), ref(texts, targets="city"))  # cached targets are per value


def test_fill_mask_model_without_split_head(models):
    """A model object lacking masked_lm_logits still works, through its full logits."""
    folder = models("bert", "mlm")
    texts = masked_texts("bert")
    fast = cove.pipeline("fill-mask", model=folder, batch_size=4)

    class Plain(torch.nn.Module):  # forwards to the model, hiding its split head
        def __init__(self, inner):
            super().__init__()
            self.inner = inner
            self.config = inner.config

        def forward(self, **kwargs):
            return self.inner(**kwargs)

    plain = Plain(cove.AutoModelForMaskedLM.from_pretrained(folder))
    tok = cove.AutoTokenizer.from_pretrained(folder)
    slow = cove.pipeline("fill-mask", model=plain, tokenizer=tok, batch_size=4)
    assert not hasattr(slow.model, "masked_lm_logits")
    assert_same(slow(texts, top_k=4), fast(texts, top_k=4))


@pytest.mark.parametrize("family", FAMILIES)
def test_skip_padding_keeps_real_tokens(models, family):
    from cove.models.modeling import skip_padding

    folder = models(family, "tok", ["O", "B-PER", "I-PER"])
    model = cove.AutoModelForTokenClassification.from_pretrained(folder).eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 300, (4, 11))
    mask = (torch.arange(11)[None] < torch.tensor([11, 7, 3, 9])[:, None]).long()
    with torch.inference_mode():
        full = model(input_ids=ids, attention_mask=mask).logits
        with skip_padding():
            packed = model(input_ids=ids, attention_mask=mask).logits
            with_states = model(input_ids=ids, attention_mask=mask, output_hidden_states=True).logits
    real = mask.bool()
    torch.testing.assert_close(packed[real], full[real], atol=1e-5, rtol=1e-5)
    assert not torch.equal(packed[~real], full[~real])  # the padded positions were skipped, not computed
    torch.testing.assert_close(with_states, full)  # asked for every layer's states: the full pass
    with skip_padding():  # autograd on (training): the full pass
        torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).logits.detach(), full)


@pytest.mark.parametrize("family", FAMILIES)
def test_first_token_only_last_layer(models, family):
    """Sequence classification computes only position 0 in the last layer at inference; logits unchanged,
    with and without skip_padding, and the full pass when every layer's states are asked for."""
    from cove.models.modeling import skip_padding

    folder = models(family, "seq", ["contradiction", "neutral", "entailment"])
    model = cove.AutoModelForSequenceClassification.from_pretrained(folder).eval()
    torch.manual_seed(1)
    ids = torch.randint(5, 300, (4, 12))
    mask = (torch.arange(12)[None] < torch.tensor([12, 5, 2, 9])[:, None]).long()
    with torch.no_grad():
        full = model(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        fast = model(input_ids=ids, attention_mask=mask).logits
        with skip_padding():
            packed = model(input_ids=ids, attention_mask=mask).logits
        base = getattr(model, model.base_model_prefix)
        first = base(input_ids=ids, attention_mask=mask, first_token_only=True).last_hidden_state
    assert first.shape[1] == 1
    torch.testing.assert_close(first[:, 0], full.hidden_states[-1][:, 0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(fast, full.logits, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed, full.logits, atol=1e-5, rtol=1e-5)
    trained = model.train()(input_ids=ids, attention_mask=mask)  # training: the full pass, dropout and all
    assert trained.logits.requires_grad
