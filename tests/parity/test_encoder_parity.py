"""Every encoder family x head: a tiny random checkpoint made by transformers, loaded by Cove's production
loader; outputs and losses within 1e-5 in fp32; saves round-trip both ways."""

from __future__ import annotations

import pytest
import torch

import cove

transformers = pytest.importorskip("transformers")

pytestmark = pytest.mark.parity

ATOL = 1e-5

FAMILIES = {
    "bert": lambda: transformers.BertConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        hidden_act="gelu",
    ),
    "distilbert": lambda: transformers.DistilBertConfig(
        vocab_size=99,
        dim=32,
        n_layers=2,
        n_heads=4,
        hidden_dim=37,
        max_position_embeddings=64,
    ),
    "roberta": lambda: transformers.RobertaConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=66,
        type_vocab_size=1,
        pad_token_id=1,
        bos_token_id=0,
        eos_token_id=2,
    ),
}
HEADS = {
    "base": ("AutoModel", "AutoModel"),
    "seq": ("AutoModelForSequenceClassification", "AutoModelForSequenceClassification"),
    "tok": ("AutoModelForTokenClassification", "AutoModelForTokenClassification"),
    "qa": ("AutoModelForQuestionAnswering", "AutoModelForQuestionAnswering"),
    "mlm": ("AutoModelForMaskedLM", "AutoModelForMaskedLM"),
}


def make_inputs(family: str, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    pad = 1 if family == "roberta" else 0
    ids = torch.randint(3, 99, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    ids[mask == 0] = pad
    inputs = {"input_ids": ids, "attention_mask": mask}
    if family == "bert":
        tt = torch.zeros_like(ids)
        tt[:, 5:] = 1
        inputs["token_type_ids"] = tt
    return inputs


def labels_for(head: str, num_labels: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    if head == "seq":
        return {"labels": torch.randint(0, num_labels, (3,), generator=g)}
    if head in ("tok", "mlm"):
        labels = torch.randint(0, num_labels if head == "tok" else 99, (3, 11), generator=g)
        labels[1, 7:] = -100
        return {"labels": labels}
    if head == "qa":
        return {"start_positions": torch.tensor([1, 3, 20]), "end_positions": torch.tensor([2, 5, 0])}
    return {}


def hf_model(family: str, head: str, seed: int = 0, **config_kwargs):
    config = FAMILIES[family]()
    for k, v in config_kwargs.items():
        setattr(config, k, v)
    if head in ("seq", "tok"):
        config.num_labels = 3
    torch.manual_seed(seed)
    model = getattr(transformers, HEADS[head][0]).from_config(config)
    return model.eval()


def assert_close(a: torch.Tensor, b: torch.Tensor, atol: float = ATOL) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    torch.testing.assert_close(a.float(), b.float(), atol=atol, rtol=0)


def compare_outputs(hf, ours, inputs: dict[str, torch.Tensor], head: str) -> None:
    with torch.no_grad():
        ref = hf(**inputs, output_hidden_states=True)
        got = ours(**inputs, output_hidden_states=True)
    if head == "base":
        assert_close(got.last_hidden_state, ref.last_hidden_state)
        if getattr(ref, "pooler_output", None) is not None:
            assert_close(got.pooler_output, ref.pooler_output)
    elif head == "qa":
        assert_close(got.start_logits, ref.start_logits)
        assert_close(got.end_logits, ref.end_logits)
    else:
        assert_close(got.logits, ref.logits)
    assert len(got.hidden_states) == len(ref.hidden_states)
    for a, b in zip(got.hidden_states, ref.hidden_states):
        assert_close(a, b)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_outputs_and_loss_match_transformers(tmp_path, family, head):
    hf = hf_model(family, head)
    hf.save_pretrained(tmp_path)
    ours = getattr(cove, HEADS[head][1]).from_pretrained(tmp_path)
    assert type(ours).__module__ == f"cove.models.{family}"
    inputs = make_inputs(family)
    compare_outputs(hf, ours, inputs, head)
    extra = labels_for(head)
    if extra:
        with torch.no_grad():
            ref_loss = hf(**inputs, **extra).loss
            got_loss = ours(**inputs, **extra).loss
        assert_close(got_loss, ref_loss)


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("head", sorted(HEADS))
def test_cove_save_loads_in_transformers(tmp_path, family, head):
    hf = hf_model(family, head, seed=3)
    hf.save_pretrained(tmp_path / "hf")
    ours = getattr(cove, HEADS[head][1]).from_pretrained(tmp_path / "hf")
    ours.save_pretrained(tmp_path / "cove")
    back = getattr(transformers, HEADS[head][0]).from_pretrained(tmp_path / "cove").eval()
    compare_outputs(back, ours, make_inputs(family, seed=5), head)
    # and the file Cove wrote holds exactly the weights transformers writes
    from safetensors.torch import load_file

    ref_state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    our_state = load_file(str(tmp_path / "cove" / "model.safetensors"))
    assert sorted(our_state) == sorted(ref_state)
    for key in ref_state:
        assert torch.equal(our_state[key], ref_state[key]), key


@pytest.mark.parametrize(
    "problem", ["regression", "multi_label_classification", "single_label_classification"]
)
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_sequence_classification_problem_types(tmp_path, family, problem):
    hf = hf_model(family, "seq", problem_type=problem)
    if problem == "regression":
        hf = hf_model(family, "base")
        config = hf.config
        config.num_labels = 1
        torch.manual_seed(0)
        hf = transformers.AutoModelForSequenceClassification.from_config(config).eval()
        labels = torch.tensor([0.5, -1.0, 2.0])
    elif problem == "multi_label_classification":
        labels = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 1.0, 0.0]])
    else:
        labels = torch.tensor([0, 2, 1])
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModelForSequenceClassification.from_pretrained(tmp_path)
    inputs = make_inputs(family)
    with torch.no_grad():
        ref, got = hf(**inputs, labels=labels), ours(**inputs, labels=labels)
    assert_close(got.logits, ref.logits)
    assert_close(got.loss, ref.loss)
    assert ours.config.problem_type == hf.config.problem_type


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_task_head_on_base_checkpoint_starts_fine_tuning(tmp_path, family):
    """A base model's checkpoint under a task head: backbone loaded, head newly initialised."""
    base = hf_model(family, "base")
    base.save_pretrained(tmp_path)
    ours = cove.AutoModelForTokenClassification.from_pretrained(tmp_path, num_labels=5)
    ref = transformers.AutoModelForTokenClassification.from_pretrained(tmp_path, num_labels=5).eval()
    inputs = make_inputs(family)
    with torch.no_grad():
        hidden_ours = ours(**inputs, output_hidden_states=True).hidden_states[-1]
        hidden_ref = ref(**inputs, output_hidden_states=True).hidden_states[-1]
    assert_close(hidden_ours, hidden_ref)
    assert ours.config.num_labels == 5
    assert ours.classifier.weight.shape == (5, 32)
    assert ours.classifier.weight.std() > 0  # initialised, not left empty


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_base_model_from_task_checkpoint(tmp_path, family):
    hf = hf_model(family, "seq")
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModel.from_pretrained(tmp_path)
    inputs = make_inputs(family)
    ref_base = getattr(hf, hf.base_model_prefix)
    with torch.no_grad():
        assert_close(ours(**inputs).last_hidden_state, ref_base(**inputs).last_hidden_state)


def test_sharded_checkpoint_round_trip(tmp_path):
    hf = hf_model("bert", "mlm")
    hf.save_pretrained(tmp_path / "hf", max_shard_size="20KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").exists()
    ours = cove.AutoModelForMaskedLM.from_pretrained(tmp_path / "hf")
    compare_outputs(hf, ours, make_inputs("bert"), "mlm")
    files = ours.save_pretrained(tmp_path / "cove", max_shard_size="20KB")
    assert len(files) > 2
    back = transformers.AutoModelForMaskedLM.from_pretrained(tmp_path / "cove").eval()
    compare_outputs(back, ours, make_inputs("bert"), "mlm")


def test_bfloat16_load(tmp_path):
    hf = hf_model("bert", "base")
    hf.save_pretrained(tmp_path)
    ours = cove.AutoModel.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    ours32 = cove.AutoModel.from_pretrained(tmp_path, torch_dtype="float32")
    inputs = make_inputs("bert")
    with torch.no_grad():
        a = ours(**inputs).last_hidden_state.float()
        b = ours32(**inputs).last_hidden_state
    cos = torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1))
    assert (cos > 0.99).all()
