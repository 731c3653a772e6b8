"""The encoder families share one set of task heads (models/encoder_heads.py): the backbone is called by
keyword, every question-answering head checks num_labels, and each family keeps its checkpoint's names."""

from __future__ import annotations

import pytest
import torch

import cove
from cove.errors import ConfigError
from cove.models import encoder_heads

SIZES = {
    "bert": dict(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20
    ),
    "roberta": dict(
        vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=20
    ),
    "distilbert": dict(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=20),
}
TASKS = {
    "sequence-classification": (
        cove.AutoModelForSequenceClassification,
        encoder_heads.EncoderForSequenceClassification,
    ),
    "token-classification": (
        cove.AutoModelForTokenClassification,
        encoder_heads.EncoderForTokenClassification,
    ),
    "question-answering": (cove.AutoModelForQuestionAnswering, encoder_heads.EncoderForQuestionAnswering),
    "masked-lm": (cove.AutoModelForMaskedLM, encoder_heads.EncoderForMaskedLM),
}


def config(family: str, num_labels: int = 2):
    cfg = cove.AutoConfig.for_model(family, **SIZES[family])
    cfg.num_labels = num_labels
    return cfg


@pytest.mark.parametrize("family", SIZES)
@pytest.mark.parametrize("task", TASKS)
def test_every_head_calls_its_backbone_by_keyword(family, task):
    auto, shared = TASKS[task]
    model = auto.from_config(config(family)).eval()
    assert isinstance(model, shared)
    calls = []
    backbone = model.backbone
    real = backbone.forward

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    backbone.forward = spy
    ids = torch.tensor([[2, 5, 7, 9], [2, 6, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    types = torch.zeros_like(ids)
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask, token_type_ids=types)
    [(args, kwargs)] = calls
    assert args == ()
    assert kwargs["input_ids"] is ids and kwargs["attention_mask"] is mask
    assert kwargs["token_type_ids"] is types  # DistilBERT's backbone accepts and ignores it
    assert kwargs.get("first_token_only", False) == (task == "sequence-classification")


@pytest.mark.parametrize("family", SIZES)
def test_every_question_answering_head_needs_two_labels(family):
    with pytest.raises(ConfigError, match=r"ForQuestionAnswering needs num_labels=2 .* got 3"):
        cove.AutoModelForQuestionAnswering.from_config(config(family, num_labels=3))


@pytest.mark.parametrize("family", SIZES)
def test_question_answering_checkpoint_with_three_labels_is_refused(family, tmp_path):
    cove.AutoModel.from_config(config(family)).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="num_labels=2"):
        cove.AutoModelForQuestionAnswering.from_pretrained(tmp_path, num_labels=3)


CHECKPOINT_MLM_NAMES = {
    "bert": {
        "cls.predictions.transform.dense.weight",
        "cls.predictions.transform.LayerNorm.weight",
        "cls.predictions.bias",
    },
    "roberta": {"lm_head.dense.weight", "lm_head.layer_norm.weight", "lm_head.bias"},
    "distilbert": {"vocab_transform.weight", "vocab_layer_norm.weight", "vocab_projector.bias"},
}


@pytest.mark.parametrize("family", SIZES)
def test_masked_lm_keeps_the_checkpoints_names_and_round_trips(family, tmp_path):
    from safetensors.torch import load_file

    torch.manual_seed(0)
    model = cove.AutoModelForMaskedLM.from_config(config(family)).eval()
    model.save_pretrained(tmp_path)
    saved = set(load_file(tmp_path / "model.safetensors"))
    assert CHECKPOINT_MLM_NAMES[family] <= saved
    assert not any(k.startswith("mlm.") for k in saved)  # Cove's module names stay inside Cove
    again = cove.AutoModelForMaskedLM.from_pretrained(tmp_path)
    assert again.mlm.decoder.weight is again.get_input_embeddings().weight  # tied, saved once
    ids = torch.tensor([[2, 5, 7, 9]])
    with torch.no_grad():
        torch.testing.assert_close(again(input_ids=ids).logits, model(input_ids=ids).logits, atol=0, rtol=0)
