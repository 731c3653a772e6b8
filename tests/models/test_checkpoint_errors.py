"""Bad checkpoints fail with errors from cove.errors that name the file or key and say what to do."""

from __future__ import annotations

import json

import pytest
import torch

import cove
from cove.errors import (
    CheckpointError,
    ConfigError,
    MissingFileError,
    ModelNotFoundError,
    UnsafeCheckpointError,
)

transformers = pytest.importorskip("transformers")


@pytest.fixture
def tiny_bert(tmp_path):
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        max_position_embeddings=32,
    )
    torch.manual_seed(0)
    transformers.BertModel(config).save_pretrained(tmp_path)
    return tmp_path


def test_missing_model(tmp_path):
    with pytest.raises(ModelNotFoundError, match="not found"):
        cove.AutoModel.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):  # also the built-in it resembles
        cove.AutoModel.from_pretrained("someone/does-not-exist")


def test_missing_config(tiny_bert):
    (tiny_bert / "config.json").unlink()
    with pytest.raises(MissingFileError, match=r"config\.json"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_missing_weights(tiny_bert):
    (tiny_bert / "model.safetensors").unlink()
    with pytest.raises(MissingFileError, match=r"model\.safetensors"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_unknown_model_type_suggests(tiny_bert):
    cfg = json.loads((tiny_bert / "config.json").read_text())
    cfg["model_type"] = "bertt"
    (tiny_bert / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"bertt.*bert"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_unsupported_value_that_changes_the_maths(tiny_bert):
    cfg = json.loads((tiny_bert / "config.json").read_text())
    cfg["position_embedding_type"] = "relative_key"
    (tiny_bert / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="relative_key"):
        cove.AutoConfig.from_pretrained(tiny_bert)


def test_unknown_config_keys_are_kept(tiny_bert, tmp_path):
    cfg = json.loads((tiny_bert / "config.json").read_text())
    cfg["my_note"] = {"a": 1}
    (tiny_bert / "config.json").write_text(json.dumps(cfg))
    config = cove.AutoConfig.from_pretrained(tiny_bert)
    assert config.my_note == {"a": 1}
    config.save_pretrained(tmp_path / "out")
    assert json.loads((tmp_path / "out" / "config.json").read_text())["my_note"] == {"a": 1}


def test_shape_mismatch_names_the_key(tiny_bert):
    cfg = json.loads((tiny_bert / "config.json").read_text())
    cfg["intermediate_size"] = 24
    (tiny_bert / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match=r"layers\.0\.ffn\.up\.weight.*\(20, 16\)"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_missing_backbone_key_raises_not_random_init(tiny_bert):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_bert / "model.safetensors"))
    del state["encoder.layer.0.attention.self.query.weight"]
    save_file(state, str(tiny_bert / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing weights.*layers\.0\.attn\.q\.weight"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_unexpected_key_raises(tiny_bert):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_bert / "model.safetensors"))
    state["encoder.layer.0.mystery.weight"] = torch.zeros(2)
    save_file(state, str(tiny_bert / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match="mystery"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_truncated_safetensors(tiny_bert):
    path = tiny_bert / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors.*truncated or corrupt"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_garbage_safetensors(tiny_bert):
    (tiny_bert / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="safetensors"):
        cove.AutoModel.from_pretrained(tiny_bert)


def test_pickle_needs_explicit_opt_in(tiny_bert):
    from safetensors.torch import load_file

    state = load_file(str(tiny_bert / "model.safetensors"))
    (tiny_bert / "model.safetensors").unlink()
    torch.save(state, tiny_bert / "pytorch_model.bin")
    with pytest.raises(UnsafeCheckpointError, match="allow_pickle=True"):
        cove.AutoModel.from_pretrained(tiny_bert)
    model = cove.AutoModel.from_pretrained(tiny_bert, allow_pickle=True)
    assert torch.equal(model.embeddings.word.weight, state["embeddings.word_embeddings.weight"])


def test_pickle_with_code_is_refused_even_with_opt_in(tiny_bert):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (tiny_bert / "model.safetensors").unlink()
    with open(tiny_bert / "pytorch_model.bin", "wb") as f:
        pickle.dump({"x": Evil()}, f)
    with pytest.raises(CheckpointError, match="weights-only"):
        cove.AutoModel.from_pretrained(tiny_bert, allow_pickle=True)


def test_wrong_family_class(tiny_bert):
    from cove.models.roberta import RobertaModel

    with pytest.raises(ConfigError, match="'bert' model"):
        RobertaModel.from_pretrained(tiny_bert)


def test_bad_dtype(tiny_bert):
    with pytest.raises(ConfigError, match="int8"):
        cove.AutoModel.from_pretrained(tiny_bert, dtype="int8")


def test_auto_config_for_model_honours_num_labels():
    """for_model(num_labels=3) used to leave the two default labels (num_labels went in as data, not as the
    override that builds id2label), so a classifier built from it had the wrong head size."""
    import cove
    from cove.models.bert import BertConfig

    config = cove.AutoConfig.for_model("bert", num_labels=3)
    assert config.num_labels == 3 and list(config.id2label.values()) == ["LABEL_0", "LABEL_1", "LABEL_2"]
    assert BertConfig.from_dict({"num_labels": 4}).num_labels == 4  # old config.json files carry the key
    labelled = cove.AutoConfig.for_model("bert", id2label={0: "neg", 1: "pos"})
    assert labelled.num_labels == 2 and labelled.id2label == {0: "neg", 1: "pos"}
