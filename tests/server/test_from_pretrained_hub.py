"""from_pretrained against a live hub: token= is what authenticates the download (and is never published),
and one load reads every file from the one commit it resolved, even when the branch moves meanwhile."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from cove.hub import client

pytestmark = pytest.mark.server

LOADER_KEYS = {
    "token",
    "cache_dir",
    "trust_remote_code",
    "local_files_only",
    "force_download",
    "revision",
    "_commit_hash",
}


@pytest.fixture
def env(hub, tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("COVE_HOME", str(tmp_path / "home"))  # no stored login
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for key in ("HF_HUB_OFFLINE", "COVE_TOKEN", "HF_TOKEN", "HF_ENDPOINT", "COVE_DATA_DIR"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path


def _classifier(folder: Path, *, labels: list[str], seed: int, max_length: int) -> Path:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cove", "hub"])}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", model_max_length=max_length
    ).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    torch.manual_seed(seed)
    BertForSequenceClassification(config).save_pretrained(folder)
    return folder


def _get(hub, repo_id: str, filename: str, token: str) -> str:
    r = httpx.get(
        f"{hub.url}/{repo_id}/resolve/main/{filename}", headers={"Authorization": f"Bearer {token}"}
    )
    r.raise_for_status()
    return r.text


def test_private_repo_loads_with_token_and_the_token_is_never_published(hub, env):
    import cove
    from cove.errors import ModelNotFoundError

    token = hub.tokens["alice"]
    folder = _classifier(env / "model", labels=["no", "yes"], seed=0, max_length=32)
    client.upload_folder("alice/private-classifier", folder, token=token, private=True)
    with pytest.raises(ModelNotFoundError):  # anonymous: the hub does not show a private repo
        cove.AutoModelForSequenceClassification.from_pretrained("alice/private-classifier")
    loader = {"token": token, "trust_remote_code": False, "cache_dir": str(env / "cache")}
    model = cove.AutoModelForSequenceClassification.from_pretrained("alice/private-classifier", **loader)
    tok = cove.AutoTokenizer.from_pretrained("alice/private-classifier", **loader)
    config = cove.AutoConfig.from_pretrained("alice/private-classifier", **loader)
    pipe = cove.pipeline("text-classification", model="alice/private-classifier", token=token)
    assert model.config.id2label == config.id2label == pipe.model.config.id2label == {0: "no", 1: "yes"}
    assert tok.model_max_length == pipe.tokenizer.model_max_length == 32
    # what push_to_hub publishes carries no loader keyword and no token
    model.push_to_hub("alice/republished", token=token, private=True)
    published = _get(hub, "alice/republished", "config.json", token)
    assert token not in published
    assert not LOADER_KEYS & set(json.loads(published))
    saved = env / "saved"
    tok.save_pretrained(saved)
    assert token not in (saved / "tokenizer_config.json").read_text()
    # transformers' save_pretrained(push_to_hub=True) spelling pushes too
    model.save_pretrained(
        env / "via-save", push_to_hub=True, repo_id="alice/via-save", token=token, private=True
    )
    assert hub.api().model_info("alice/via-save").private is True
    published = _get(hub, "alice/via-save", "config.json", token)
    assert token not in published and not LOADER_KEYS & set(json.loads(published))


def test_one_load_reads_one_commit_while_the_branch_moves(hub, env, monkeypatch):
    import torch

    import cove

    token = hub.tokens["alice"]
    monkeypatch.setenv("COVE_TOKEN", token)
    first = _classifier(env / "first", labels=["neg", "pos"], seed=0, max_length=32)
    second = _classifier(env / "second", labels=["a", "b", "c"], seed=1, max_length=24)
    client.upload_folder("alice/moving", first, token=token)
    commit_a = hub.api().model_info("alice/moving").sha
    original = client.hub_download
    pushed: list[str] = []

    def download_then_move_main(*args, **kwargs):  # type: ignore[no-untyped-def]
        path = original(*args, **kwargs)
        if not pushed:  # the branch moves as soon as the load has started fetching
            pushed.append(client.upload_folder("alice/moving", second, token=token))
        return path

    monkeypatch.setattr(client, "hub_download", download_then_move_main)
    pipe = cove.pipeline("text-classification", model="alice/moving")
    assert pushed and hub.api().model_info("alice/moving").sha != commit_a  # main did move mid-load
    expected = cove.AutoModelForSequenceClassification.from_pretrained(first)
    assert pipe.model.config.id2label == {0: "neg", 1: "pos"}  # config of commit a
    assert pipe.model.config._commit_hash == commit_a
    for (name, got), want in zip(pipe.model.state_dict().items(), expected.state_dict().values()):
        assert torch.equal(got, want), name  # weights of commit a
    assert pipe.tokenizer.model_max_length == 32  # tokenizer of commit a
    # a pinned revision loads the same commit later, the branch loads the new one
    assert cove.AutoConfig.from_pretrained("alice/moving", revision=commit_a).num_labels == 2
    assert cove.AutoConfig.from_pretrained("alice/moving").num_labels == 3


def test_force_download_fetches_again(hub, env):
    import cove

    token = hub.tokens["alice"]
    folder = _classifier(env / "model", labels=["no", "yes"], seed=0, max_length=32)
    client.upload_folder("alice/refetch", folder, token=token)
    snap = Path(cove.hub.resolve_model_dir("alice/refetch", token=token))
    blob = (snap / "config.json").resolve()
    blob.write_text("{}")  # a damaged cache entry
    from cove.errors import ConfigError

    with pytest.raises(ConfigError, match="model_type"):  # the damaged copy is what the cache holds
        cove.AutoConfig.from_pretrained("alice/refetch", token=token, local_files_only=True)
    config = cove.AutoConfig.from_pretrained("alice/refetch", token=token, force_download=True)
    assert config.id2label == {0: "no", 1: "yes"}
    assert json.loads(blob.read_text())["id2label"] == {"0": "no", "1": "yes"}
