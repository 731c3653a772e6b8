"""from_pretrained's keywords: download options reach the download and never config.json, unknown ones raise,
remote code is refused, and a load resolves its name once (issue 12, item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import cove
from cove.errors import ConfigError, MissingFileError, OfflineModeError, RemoteCodeError

transformers = pytest.importorskip("transformers")

SECRET = "hf_not-a-real-token-0123456789"
LOADER_KEYS = {"token", "cache_dir", "trust_remote_code", "local_files_only", "force_download", "revision"}


def _tiny_bert(folder: Path, *, num_labels: int = 2) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=20,
        max_position_embeddings=32,
        num_labels=num_labels,
    )
    torch.manual_seed(0)
    transformers.BertForSequenceClassification(config).save_pretrained(folder)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cove", "hub"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]").save_pretrained(folder)
    return folder


def _tiny_llama(folder: Path) -> Path:
    config = transformers.LlamaConfig(
        vocab_size=32,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    transformers.GenerationConfig(max_new_tokens=7, eos_token_id=2).save_pretrained(folder)
    return folder


def _saved_texts(folder: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in sorted(folder.iterdir()) if p.suffix == ".json")


def test_download_keywords_never_reach_saved_files(tmp_path):
    folder = _tiny_bert(tmp_path / "bert")
    loader = {
        "token": SECRET,
        "cache_dir": str(tmp_path / "cache"),
        "trust_remote_code": False,
        "local_files_only": True,
        "force_download": False,
    }
    model = cove.AutoModelForSequenceClassification.from_pretrained(
        folder, num_labels=3, output_hidden_states=True, ignore_mismatched_sizes=True, **loader
    )
    tok = cove.AutoTokenizer.from_pretrained(folder, use_fast=True, model_max_length=16, **loader)
    config = cove.AutoConfig.from_pretrained(folder, **loader)
    out = tmp_path / "saved"
    model.save_pretrained(out)
    tok.save_pretrained(out)
    saved = json.loads((out / "config.json").read_text())
    assert not LOADER_KEYS & set(saved), sorted(LOADER_KEYS & set(saved))
    assert not LOADER_KEYS & set(json.loads((out / "tokenizer_config.json").read_text()))
    assert SECRET not in _saved_texts(out)
    assert not LOADER_KEYS & set(config.to_dict())
    # config overrides still work, and are what config.json gains
    assert saved["output_hidden_states"] is True and len(saved["id2label"]) == 3
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 16


def test_unknown_keywords_raise_naming_them(tmp_path):
    folder = _tiny_bert(tmp_path / "bert")
    for load in (
        cove.AutoModel.from_pretrained,
        cove.AutoModelForSequenceClassification.from_pretrained,
        cove.BertModel.from_pretrained,
        cove.AutoConfig.from_pretrained,
        cove.BertConfig.from_pretrained,
    ):
        with pytest.raises(TypeError, match="not_a_field"):
            load(folder, not_a_field=1)
    with pytest.raises(TypeError, match="otput_hidden_states"):  # a misspelt field is not stored either
        cove.AutoModel.from_pretrained(folder, otput_hidden_states=True)
    # transformers' opt-out: unused keywords come back instead of raising
    config, unused = cove.AutoConfig.from_pretrained(
        folder, foo=1, hidden_act="gelu", return_unused_kwargs=True
    )
    assert unused == {"foo": 1} and "foo" not in config.to_dict()
    # a key the checkpoint's config.json carries is a field of that config, so it may be overridden
    assert (
        cove.AutoModel.from_pretrained(folder, transformers_version="x").config.extra["transformers_version"]
        == "x"
    )


def test_remote_code_is_refused_everywhere(tmp_path):
    folder = _tiny_bert(tmp_path / "bert")
    loads = (
        cove.AutoModel.from_pretrained,
        cove.BertModel.from_pretrained,
        cove.AutoConfig.from_pretrained,
        cove.AutoTokenizer.from_pretrained,
        cove.PreTrainedTokenizerFast.from_pretrained,
    )
    for load in loads:
        with pytest.raises(RemoteCodeError, match="never"):
            load(folder, trust_remote_code=True)
        load(folder, trust_remote_code=False)
        load(folder, trust_remote_code=None)
    with pytest.raises(RemoteCodeError):
        cove.pipeline("text-classification", model=str(folder), trust_remote_code=True)
    llama = _tiny_llama(tmp_path / "llama")
    with pytest.raises(RemoteCodeError):
        cove.GenerationConfig.from_pretrained(llama, trust_remote_code=True)
    with pytest.raises(ValueError):  # RemoteCodeError is also the built-in it resembles
        cove.AutoModelForCausalLM.from_pretrained(llama, trust_remote_code=True)


def test_transformers_loader_keywords(tmp_path):
    folder = _tiny_bert(tmp_path / "bert")
    base = cove.AutoModel.from_pretrained(folder)
    # accepted: what Cove does anyway, or what transformers 5 itself drops
    model = cove.AutoModel.from_pretrained(
        folder,
        device_map="cpu",
        low_cpu_mem_usage=True,
        attn_implementation="sdpa",
        weights_only=True,
        use_safetensors=True,
        quantization_config=None,
        _from_auto=True,
    )
    assert model.device == torch.device("cpu")
    assert torch.equal(model.embeddings.word.weight, base.embeddings.word.weight)
    assert cove.AutoModel.from_pretrained(folder, device_map={"": "cpu"}).device == torch.device("cpu")
    assert cove.AutoModel.from_pretrained(folder, dtype="bfloat16").dtype == torch.bfloat16
    with pytest.warns(FutureWarning, match="proxies"):  # ignored, as huggingface_hub 1.x+ ignores it
        cove.AutoModel.from_pretrained(folder, proxies={"https": "http://proxy:1"})
    # refused: features Cove does not have, or values that would ask for something it does not do
    with pytest.raises(TypeError, match="quantization_config"):
        cove.AutoModel.from_pretrained(folder, quantization_config={"load_in_4bit": True})
    with pytest.raises(TypeError, match="from_tf"):
        cove.AutoModel.from_pretrained(folder, from_tf=True)
    with pytest.raises(ConfigError, match="keeps a model on one"):
        cove.AutoModel.from_pretrained(folder, device_map={"embeddings": "cpu", "encoder": "meta"})
    with pytest.raises(ConfigError, match="flash_attention_2"):
        cove.AutoModel.from_pretrained(folder, attn_implementation="flash_attention_2")
    with pytest.raises(ValueError, match="weights_only=False"):
        cove.AutoModel.from_pretrained(folder, weights_only=False)
    with pytest.raises(MissingFileError, match="use_safetensors=False"):
        cove.AutoModel.from_pretrained(folder, use_safetensors=False)
    with pytest.raises(ConfigError, match="generate"):
        cove.BertModel.from_pretrained(folder, generation_config=cove.GenerationConfig())
    # config= may be a path, read with the same download options
    config_only = tmp_path / "config-only"
    config_only.mkdir()
    shutil.copy(folder / "config.json", config_only / "config.json")
    assert cove.AutoModel.from_pretrained(folder, config=str(config_only)).config.hidden_size == 16


def test_subfolder(tmp_path):
    repo = tmp_path / "repo"
    _tiny_bert(repo / "inner")
    model = cove.AutoModel.from_pretrained(repo, subfolder="inner")
    tok = cove.AutoTokenizer.from_pretrained(repo, subfolder="inner")
    assert model.config.hidden_size == 16 and tok.convert_tokens_to_ids("cove") == 5
    assert model.config.name_or_path == str(repo)
    with pytest.raises(MissingFileError, match="missing"):
        cove.AutoModel.from_pretrained(repo, subfolder="missing")
    with pytest.raises(MissingFileError, match="inside"):
        cove.AutoModel.from_pretrained(repo / "inner", subfolder="../inner")


def _cache_with_two_commits(root: Path, repo_id: str) -> tuple[str, str]:
    """The huggingface_hub cache layout with tag v1 -> commit a, main -> commit b (b has 4 labels)."""
    folder = root / f"models--{repo_id.replace('/', '--')}"
    a, b = "a" * 40, "b" * 40
    _tiny_bert(folder / "snapshots" / a, num_labels=2)
    _tiny_bert(folder / "snapshots" / b, num_labels=4)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(b)
    (folder / "refs" / "v1").write_text(a)
    return a, b


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if Cove's hub client opens a connection."""
    from cove.hub import client

    def refuse(*_a, **_k):
        raise AssertionError("the hub client opened a connection")

    monkeypatch.setattr(client, "_client", refuse)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # tests/conftest.py turns it on for the suite
    monkeypatch.delenv("COVE_OFFLINE", raising=False)


def test_local_files_only_revision_and_cache_dir_with_a_hub_configured(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("COVE_ENDPOINT", "http://127.0.0.1:9")  # would be used, were the network allowed
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "default-cache"))
    cache = tmp_path / "my-cache"
    _cache_with_two_commits(cache, "me/tiny")
    load = cove.AutoModelForSequenceClassification.from_pretrained
    assert load("me/tiny", cache_dir=cache, local_files_only=True).config.num_labels == 4
    assert load("me/tiny", cache_dir=cache, local_files_only=True, revision="v1").config.num_labels == 2
    tok = cove.AutoTokenizer.from_pretrained("me/tiny", cache_dir=cache, local_files_only=True, revision="v1")
    assert tok.convert_tokens_to_ids("hub") == 6
    with pytest.raises(OfflineModeError, match="me/tiny") as err:  # not in the default cache
        load("me/tiny", local_files_only=True)
    assert "local_files_only" in str(err.value) and type(err.value) is OfflineModeError
    with pytest.raises(OfflineModeError, match="me/other"):
        cove.AutoTokenizer.from_pretrained("me/other", cache_dir=cache, local_files_only=True)
    with pytest.raises(OfflineModeError, match="me/other"):
        cove.AutoConfig.from_pretrained("me/other", cache_dir=cache, local_files_only=True)


def test_revision_and_cache_dir_without_a_hub(tmp_path, monkeypatch):
    monkeypatch.delenv("COVE_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "no-data-dir"))
    cache = tmp_path / "my-cache"
    _cache_with_two_commits(cache, "me/tiny")
    load = cove.AutoModelForSequenceClassification.from_pretrained
    assert load("me/tiny", cache_dir=cache, revision="v1").config.num_labels == 2
    assert load("me/tiny", cache_dir=cache).config.num_labels == 4


def test_one_resolution_per_load(tmp_path, monkeypatch):
    """Model, generation config and (in a pipeline) tokenizer come from one resolution of the name."""
    from cove.hub import client

    monkeypatch.setenv("COVE_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # served from the cache
    cache = tmp_path / "cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    commit = "c" * 40
    repo = cache / "models--me--tiny-llama"
    _tiny_llama(repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    bert_repo = cache / "models--me--tiny-bert"
    _tiny_bert(bert_repo / "snapshots" / commit)
    (bert_repo / "refs").mkdir()
    (bert_repo / "refs" / "main").write_text(commit)
    calls: list[str] = []
    original = client.snapshot_download

    def counting(repo_id, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(repo_id)
        return original(repo_id, **kwargs)

    monkeypatch.setattr(client, "snapshot_download", counting)
    model = cove.AutoModelForCausalLM.from_pretrained("me/tiny-llama")
    assert calls == ["me/tiny-llama"]
    assert model.generation_config.max_new_tokens == 7  # read from the same snapshot
    calls.clear()
    cove.AutoModelForSequenceClassification.from_pretrained("me/tiny-bert")
    assert calls == ["me/tiny-bert"]
    calls.clear()
    pipe = cove.pipeline("text-classification", model="me/tiny-bert")
    assert calls == ["me/tiny-bert"]  # model and tokenizer from one snapshot
    assert pipe.model.config.name_or_path == "me/tiny-bert" == pipe.tokenizer.name_or_path
    calls.clear()
    cove.pipeline("text-generation", model="me/tiny-llama", tokenizer=str(bert_repo / "snapshots" / commit))
    assert calls == ["me/tiny-llama"]


def test_use_auth_token_is_refused_not_stored(tmp_path):
    folder = _tiny_bert(tmp_path / "bert")
    for load in (
        cove.AutoModel.from_pretrained,
        cove.AutoTokenizer.from_pretrained,
        cove.AutoConfig.from_pretrained,
    ):
        with pytest.raises(TypeError, match="token="):
            load(folder, use_auth_token=SECRET)


def test_save_pretrained_keywords(tmp_path):
    model = cove.AutoModel.from_pretrained(_tiny_bert(tmp_path / "bert"))
    with pytest.raises(TypeError, match="bogus"):  # no longer swallowed
        model.save_pretrained(tmp_path / "out", bogus=1)
    with pytest.raises(ValueError, match="safetensors only"):
        model.save_pretrained(tmp_path / "out", safe_serialization=False)
    with pytest.raises(TypeError, match="push_to_hub=True"):
        model.save_pretrained(tmp_path / "out", repo_id="me/model")
    assert model.save_pretrained(tmp_path / "rank1", is_main_process=False) == []
    assert not (tmp_path / "rank1").exists()
    files = model.save_pretrained(tmp_path / "out", safe_serialization=True, max_shard_size="10MB")
    assert [f.name for f in files] == ["model.safetensors"]
