"""The disk cache of dequantized GGUF models: hits skip dequantizing, a changed file or a damaged entry is
converted again, writes are atomic, and the cache can be turned off or be unwritable without breaking
loads."""

from __future__ import annotations

import collections
import json
import logging
import threading
from pathlib import Path

import pytest
import safetensors.torch
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


def dequantized(tmp_path):
    path = write_gguf(tmp_path / "m.gguf", tiny_llama())
    source = GGUFFile(path)
    return path, source.config(), source.state_dict()


def test_concurrent_writers_leave_one_complete_entry(tmp_path, cache_root):
    path, config, state = dequantized(tmp_path)
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


def test_a_writer_keeps_the_complete_entry_another_writer_put_in_place(tmp_path, cache_root, monkeypatch):
    """Writer B finishes while writer A is still writing its copy: A keeps B's entry (same folder, same
    files, so a reader that resolved it keeps reading them) and drops its own."""
    path, config, state = dequantized(tmp_path)
    real_save = safetensors.torch.save_file
    b: dict[str, object] = {}

    def save_then_b_finishes(tensors, filename, metadata=None):
        real_save(tensors, filename, metadata=metadata)
        if not b:
            b["entry"] = None  # B's own save_file call must not start a third writer
            entry = gguf_cache.store(path, config, state)
            b.update(entry=entry, ino=entry.stat().st_ino, weights=(entry / "model.safetensors").stat())

    monkeypatch.setattr(safetensors.torch, "save_file", save_then_b_finishes)
    entry = gguf_cache.store(path, config, state)
    assert entry == b["entry"] == gguf_cache.lookup(path)
    assert entry.stat().st_ino == b["ino"]  # not replaced by A's copy
    weights = (entry / "model.safetensors").stat()
    assert (weights.st_ino, weights.st_mtime_ns) == (b["weights"].st_ino, b["weights"].st_mtime_ns)
    assert entries(cache_root) == [entry.name]


def test_three_writers_in_the_interleaving_that_failed_ci(tmp_path, cache_root, monkeypatch):
    """The CI failure (OSError 39, 'Directory not empty'), step by step: A finds no entry; B puts its entry in
    place just before A renames its copy there, so A's rename fails; C, finding B's entry, moves it away
    just before A looks again, so A finds nothing and raises. Each hook lets the other writer run as far as
    it can within a second: where the cache's lock makes it wait, the lock decides the order."""
    path, config, state = dequantized(tmp_path)
    errors: dict[str, BaseException] = {}

    def write(name: str) -> None:
        try:
            gguf_cache.store(path, config, state)
        except BaseException as exc:
            errors[name] = exc

    others = {name: threading.Thread(target=write, args=(name,), name=name) for name in "BC"}
    real_rename = Path.rename
    renames: collections.Counter[str] = collections.Counter()
    c_moved_b_away, c_may_go_on = threading.Event(), threading.Event()

    def rename(self, target):
        who = threading.current_thread().name
        renames[who] += 1
        if who == "A" and renames[who] == 1:  # A is about to put its copy in place: B first
            others["B"].start()
            others["B"].join(timeout=1)
        if who == "C" and renames[who] == 2:  # C moved B's entry away; it puts its own later
            c_may_go_on.wait(timeout=10)
        try:
            return real_rename(self, target)
        finally:
            if who == "C" and renames[who] == 1:
                c_moved_b_away.set()
            if who == "A" and renames[who] == 1:  # A's rename done (or failed): now C
                others["C"].start()
                c_moved_b_away.wait(timeout=1)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "rename", rename)
        a = threading.Thread(target=write, args=("A",), name="A")
        a.start()
        a.join(timeout=30)
        c_may_go_on.set()
        for thread in others.values():
            thread.join(timeout=30)
    assert not errors
    entry = gguf_cache.lookup(path)
    assert entry is not None and entries(cache_root) == [entry.name]


def test_a_reader_does_not_discard_the_entry_a_writer_just_repaired(tmp_path, cache_root):
    """A reader fails to load a damaged entry; before it discards it, another writer has replaced it with a
    complete one: that one stays."""
    path, config, state = dequantized(tmp_path)
    entry = gguf_cache.store(path, config, state)
    weights = entry / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:40] = b"\xff" * 32  # same size, so lookup still returns it; loading it fails
    weights.write_bytes(bytes(data))
    assert gguf_cache.lookup(path) == entry  # what the reader saw
    gguf_cache.store(path, config, state)  # the writer repairs it
    repaired = entry.stat().st_ino
    gguf_cache.discard(entry)  # the reader, acting on what it saw
    assert gguf_cache.lookup(path) == entry and entry.stat().st_ino == repaired
    loaded = safetensors.torch.load_file(entry / "model.safetensors")
    assert loaded.keys() == state.keys()
    gguf_cache.discard(entry)
    assert gguf_cache.lookup(path) == entry  # discard keeps whatever is complete


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
