"""transformers and datasets, unmodified, loading from a live Cove hub through HF_ENDPOINT.

Each runs in a subprocess: both libraries read HF_ENDPOINT when they are imported.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.server, pytest.mark.slow]


def _run(hub, tmp_path: Path, code: str, *, token: str | None = None) -> dict:
    env = {
        **os.environ,
        "HF_ENDPOINT": hub.url,
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    }
    env.pop("HF_HUB_OFFLINE", None)
    if token:
        env["HF_TOKEN"] = token
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _tiny_bert(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "cove", "runs", "off", "##line", "hub", "."]
    tok = Tokenizer(models.WordPiece({w: i for i, w in enumerate(vocab)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = BertTokenizerFast(tokenizer_object=tok, model_max_length=32)
    fast.save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)


def test_transformers_from_pretrained_through_hf_endpoint(hub, tmp_path):
    import torch
    from transformers import AutoModel, AutoTokenizer

    folder = tmp_path / "tiny-bert"
    _tiny_bert(folder)
    api = hub.api()
    api.create_repo("alice/tiny-bert", private=True)
    api.upload_folder(repo_id="alice/tiny-bert", folder_path=folder)
    local_tok = AutoTokenizer.from_pretrained(folder)
    local_model = AutoModel.from_pretrained(folder)
    expected_ids = local_tok("Cove runs offline.")["input_ids"]
    with torch.no_grad():
        expected = local_model(**local_tok("Cove runs offline.", return_tensors="pt")).last_hidden_state[
            0, 0, :4
        ]
    code = """
import json, torch
from transformers import AutoConfig, AutoModel, AutoTokenizer
cfg = AutoConfig.from_pretrained("alice/tiny-bert")
tok = AutoTokenizer.from_pretrained("alice/tiny-bert")
model = AutoModel.from_pretrained("alice/tiny-bert")
with torch.no_grad():
    out = model(**tok("Cove runs offline.", return_tensors="pt")).last_hidden_state[0, 0, :4]
print(json.dumps({"hidden": cfg.hidden_size, "type": cfg.model_type,
                  "ids": tok("Cove runs offline.")["input_ids"], "out": out.tolist()}))
"""
    got = _run(hub, tmp_path, code, token=hub.tokens["alice"])
    assert got["hidden"] == 16 and got["type"] == "bert"
    assert got["ids"] == expected_ids
    assert torch.allclose(torch.tensor(got["out"]), expected, atol=1e-6)
    # without the token the private repo does not exist for transformers either
    env_code = """
import json
from transformers import AutoConfig
try:
    AutoConfig.from_pretrained("alice/tiny-bert")
    print(json.dumps({"error": None}))
except OSError as exc:
    print(json.dumps({"error": type(exc).__name__, "msg": str(exc)[:200]}))
"""
    denied = _run(hub, tmp_path / "anon", env_code)
    assert denied["error"] is not None and "alice/tiny-bert" in denied["msg"]


def test_datasets_load_dataset_csv_and_parquet(hub, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    api = hub.api()
    api.create_repo("alice/reviews", repo_type="dataset")
    folder = tmp_path / "ds"
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "train.csv").write_text("text,label\ngreat,1\nawful,0\nfine,1\n")
    (folder / "data" / "test.csv").write_text("text,label\nmeh,0\n")
    api.upload_folder(repo_id="alice/reviews", folder_path=folder, repo_type="dataset")
    code = """
import json
from datasets import load_dataset
ds = load_dataset("alice/reviews")
print(json.dumps({"splits": sorted(ds), "train": ds["train"].to_dict(), "test": len(ds["test"])}))
"""
    got = _run(hub, tmp_path, code)
    assert got["splits"] == ["test", "train"]
    assert got["train"] == {"text": ["great", "awful", "fine"], "label": [1, 0, 1]}
    assert got["test"] == 1

    api.create_repo("alice/numbers", repo_type="dataset")
    table = pa.table({"x": list(range(50)), "y": [i * i for i in range(50)]})
    pq.write_table(table, tmp_path / "train.parquet")
    api.upload_file(
        path_or_fileobj=tmp_path / "train.parquet",
        path_in_repo="data/train-00000-of-00001.parquet",
        repo_id="alice/numbers",
        repo_type="dataset",
    )
    code = """
import json
from datasets import load_dataset
ds = load_dataset("alice/numbers", split="train")
streamed = [row["y"] for row in load_dataset("alice/numbers", split="train", streaming=True).take(4)]
print(json.dumps({"n": len(ds), "y7": ds[7]["y"], "streamed": streamed}))
"""
    assert _run(hub, tmp_path / "p", code) == {"n": 50, "y7": 49, "streamed": [0, 1, 4, 9]}
