"""A Cove model's push_to_hub through cove.hub to a live hub, read back by Cove and by transformers."""

from __future__ import annotations

import pytest

from tests.server.test_stock_clients import _run, _tiny_bert

pytestmark = [pytest.mark.server, pytest.mark.slow]


def test_cove_model_push_to_hub_round_trip(hub, tmp_path, monkeypatch):
    import torch

    import cove

    monkeypatch.setenv("COVE_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    folder = tmp_path / "tiny"
    _tiny_bert(folder)
    model = cove.AutoModel.from_pretrained(folder)
    ids = torch.tensor([[2, 5, 6, 7, 8, 10, 3]])
    with torch.no_grad():
        expected = model(input_ids=ids).last_hidden_state
    url = model.push_to_hub("alice/cove-pushed", token=hub.tokens["alice"], private=True)
    assert "/alice/cove-pushed/commit/" in url
    files = set(hub.api().list_repo_files("alice/cove-pushed"))
    assert {"config.json", "model.safetensors"} <= files
    monkeypatch.setenv("COVE_TOKEN", hub.tokens["alice"])
    reloaded = cove.AutoModel.from_pretrained("alice/cove-pushed")
    with torch.no_grad():
        assert torch.allclose(reloaded(input_ids=ids).last_hidden_state, expected, atol=1e-6)
    # and the stock transformers client loads what Cove pushed
    code = """
import json, torch
from transformers import AutoModel
model = AutoModel.from_pretrained("alice/cove-pushed")
with torch.no_grad():
    out = model(input_ids=torch.tensor([[2, 5, 6, 7, 8, 10, 3]])).last_hidden_state
print(json.dumps({"out": out[0, :, :4].tolist()}))
"""
    got = _run(hub, tmp_path, code, token=hub.tokens["alice"])
    assert torch.allclose(torch.tensor(got["out"]), expected[0, :, :4], atol=1e-5)
