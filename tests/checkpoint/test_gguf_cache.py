"""The disk cache of dequantized GGUF models: hits skip dequantizing, a changed file or a damaged entry is
converted again, writes are atomic, and the cache can be turned off or be unwritable without breaking
loads."""

from __future__ import annotations

import json
import logging
import threading

import pytest
import torch

import cove
from cove.checkpoint import gguf_cache
from cove.checkpoint.gguf import GGUFFile

from .test_gguf import IDS, tiny_llama, write_gguf

pytest.importorskip("gguf")


def entries(root):
    folder = root / "gguf-models"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def logits(model):
    with torch.no_grad():
        return model(IDS).logits


@pytest.fixture
def cache_root(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("COVE_CACHE", str(root))
    monkeypatch.delenv("COVE_GGUF_CACHE", raising=False)
    return root


@pytest.fixture
def no_dequantizing(monkeypatch):
    def refuse(self, dtype=None):
        raise AssertionError("the GGUF was dequantized although the cache holds it")

    monkeypatch.setattr(GGUFFile, "state_dict", refuse)


def test_second_load_reads_the_cache_not_the_gguf(tmp_path, cache_root, monkeypatch):
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    first = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    [name] = entries(cache_root)
    entry = cache_root / "gguf-models" / name
    assert {"config.json", "model.safetensors", "manifest.json"} == {p.name for p in entry.iterdir()}

    def refuse(*args, **kwargs):
        raise AssertionError("the GGUF file was parsed although the cache holds it")

    monkeypatch.setattr("cove.models.gguf.GGUFFile", refuse)
    second = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    assert type(second) is type(first) and second.config.to_dict() == first.config.to_dict()
    assert torch.equal(logits(second), logits(first))
    with torch.no_grad():
        torch.testing.assert_close(logits(second), hf(IDS).logits, atol=1e-5, rtol=0)
    bf16 = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf", dtype=torch.bfloat16)
    assert bf16.model.embed.weight.dtype == torch.bfloat16
    assert entries(cache_root) == [name]


def test_a_changed_file_is_converted_again_and_the_stale_entry_dropped(tmp_path, cache_root):
    write_gguf(tmp_path / "m.gguf", tiny_llama())
    old = logits(cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf"))
    [old_entry] = entries(cache_root)
    other = tiny_llama()
    with torch.no_grad():
        for p in other.parameters():
            p.mul_(1.5)
    write_gguf(tmp_path / "m.gguf", other)  # same path, same size, new weights
    new = logits(cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf"))
    [new_entry] = entries(cache_root)
    assert new_entry != old_entry and new_entry.split("-")[0] == old_entry.split("-")[0]
    with torch.no_grad():
        torch.testing.assert_close(new, other(IDS).logits, atol=1e-4, rtol=0)
    assert not torch.allclose(new, old)


def test_another_file_gets_its_own_entry(tmp_path, cache_root):
    hf = tiny_llama()
    write_gguf(tmp_path / "a.gguf", hf)
    write_gguf(tmp_path / "b.gguf", hf)
    cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="a.gguf")
    cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="b.gguf")
    assert len(entries(cache_root)) == 2


@pytest.mark.parametrize("damage", ["truncate", "garble", "manifest", "no-manifest"])
def test_a_damaged_entry_is_rebuilt(tmp_path, cache_root, damage, caplog):
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    good = logits(cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf"))
    [name] = entries(cache_root)
    entry = cache_root / "gguf-models" / name
    weights = entry / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "garble":  # same size, unreadable header
        data = bytearray(weights.read_bytes())
        data[8:40] = b"\xff" * 32
        weights.write_bytes(bytes(data))
    elif damage == "manifest":
        (entry / "manifest.json").write_text("{not json", encoding="utf-8")
    else:
        (entry / "manifest.json").unlink()
    with caplog.at_level(logging.WARNING, logger="cove"):
        again = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    assert torch.equal(logits(again), good)
    assert entries(cache_root) == [name]
    assert gguf_cache.lookup(tmp_path / "m.gguf") == entry
    if damage == "garble":
        assert "unreadable" in caplog.text


def test_leftovers_of_an_interrupted_write_are_never_used(tmp_path, cache_root, no_dequantizing):
    hf = tiny_llama()
    path = write_gguf(tmp_path / "m.gguf", hf)
    entry = gguf_cache.entry_dir(path)
    entry.mkdir(parents=True)
    (entry / "config.json").write_text("{}", encoding="utf-8")  # no manifest: a crash mid-write
    assert gguf_cache.lookup(path) is None
    with pytest.raises(AssertionError, match="dequantized"):
        cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")


def test_concurrent_writers_leave_one_complete_entry(tmp_path, cache_root):
    hf = tiny_llama()
    path = write_gguf(tmp_path / "m.gguf", hf)
    source = GGUFFile(path)
    config, state = source.config(), source.state_dict()
    errors: list[BaseException] = []

    def write() -> None:
        try:
            gguf_cache.store(path, config, state)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(entries(cache_root)) == 1  # no temporary or trash folders left
    entry = gguf_cache.lookup(path)
    assert entry is not None
    manifest = json.loads((entry / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["stamp"]["size"] == path.stat().st_size


def test_cache_off_writes_nothing(tmp_path, cache_root, monkeypatch):
    monkeypatch.setenv("COVE_GGUF_CACHE", "0")
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    model = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    with torch.no_grad():
        torch.testing.assert_close(logits(model), hf(IDS).logits, atol=1e-5, rtol=0)
    assert not cache_root.exists()


def test_an_unwritable_cache_still_loads_with_a_warning(tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be", encoding="utf-8")
    monkeypatch.setenv("COVE_CACHE", str(blocker / "cache"))
    monkeypatch.delenv("COVE_GGUF_CACHE", raising=False)
    hf = tiny_llama()
    write_gguf(tmp_path / "m.gguf", hf)
    with caplog.at_level(logging.WARNING, logger="cove"):
        model = cove.AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file="m.gguf")
    with torch.no_grad():
        torch.testing.assert_close(logits(model), hf(IDS).logits, atol=1e-5, rtol=0)
    assert "COVE_CACHE" in caplog.text
