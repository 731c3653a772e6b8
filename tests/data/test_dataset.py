"""cove.data behaviour of its own: caching, fingerprints, memory mapping, errors, repo folders, push_to_hub."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pytest

import cove
import cove.data as cd
from cove.data.fingerprint import hash_object
from cove.errors import DatasetError, DatasetIndexError, DatasetNotFoundError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATASETS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def csv_file(tmp_path):
    path = tmp_path / "rows.csv"
    with open(path, "w") as f:
        f.write("text,label\n")
        for i in range(500):
            f.write(f"row number {i},{'pos' if i % 3 else 'neg'}\n")
    return path


def test_public_names_are_exported_lazily():
    for name in ("load_dataset", "load_from_disk", "Dataset", "DatasetDict", "IterableDataset", "Features"):
        assert getattr(cove, name) is getattr(cd, name)
    assert cove.Sequence(cove.Value("int8")) == cd.List(cd.Value("int8"))
    code = "import sys, cove; assert 'pyarrow' not in sys.modules and 'cove.data' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- map cache ---------------------------------------------------------------------------------


def _calls(log):
    return len(log.read_text()) if log.exists() else 0


def test_rerunning_the_same_map_reads_the_cache(csv_file, tmp_path):
    # the call log is a file: a list in the closure would change the function's hash as it grows
    log = str(tmp_path / "calls.log")

    def tokenize(batch):
        with open(log, "a") as f:
            f.write("x" * len(batch["text"]))
        return {"words": [t.split() for t in batch["text"]]}

    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")
    first = ds.map(tokenize, batched=True, batch_size=100)
    assert _calls(tmp_path / "calls.log") == 500
    again = cd.load_dataset("csv", data_files=str(csv_file), split="train").map(
        tokenize, batched=True, batch_size=100
    )
    assert _calls(tmp_path / "calls.log") == 500  # not called again
    assert again.cache_files == first.cache_files
    assert again.to_dict() == first.to_dict()
    ds.map(tokenize, batched=True, batch_size=50)  # another argument: a new computation
    assert _calls(tmp_path / "calls.log") == 1000


def test_cache_tracks_closure_values_and_input(csv_file):
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")

    def make(suffix):
        return lambda r: {"text": r["text"] + suffix}

    a, b = ds.map(make("!")), ds.map(make("?"))
    assert a[0]["text"].endswith("!") and b[0]["text"].endswith("?")
    assert a.cache_files != b.cache_files
    c = ds.select(range(10)).map(make("!"))
    assert len(c) == 10 and c[9]["text"] == "row number 9!"


def test_function_hash_ignores_location_but_not_code():
    def f(x):
        return x + 1

    def g(x):
        return x + 1

    def h(x):
        return x + 2

    assert hash_object(f) == hash_object(g)
    assert hash_object(f) != hash_object(h)
    scale = 3
    k1 = lambda x: x * scale  # noqa: E731
    scale = 4
    k2 = lambda x: x * scale  # noqa: E731
    assert hash_object(k1) == hash_object(k2)  # same cell, same value now: both see 4
    assert hash_object(lambda x, s=3: x * s) != hash_object(lambda x, s=4: x * s)
    assert hash_object({"a": np.arange(3)}) != hash_object({"a": np.arange(4)})


def test_a_global_used_by_the_function_is_part_of_its_hash(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        from cove.data.fingerprint import hash_object
        VOCAB = {"a": int(sys.argv[1])}
        def f(x):
            return VOCAB[x]
        print(hash_object(f))
        """
    )
    path = tmp_path / "glob.py"
    path.write_text(script)
    out = [
        subprocess.run([sys.executable, str(path), v], capture_output=True, text=True, check=True).stdout
        for v in "112"
    ]
    assert out[0] == out[1] != out[2]


def test_unhashable_function_still_maps_but_is_not_cached():
    import threading

    lock = threading.Lock()  # cannot be pickled
    calls = []

    def fn(r):
        with lock:
            calls.append(1)
        return {"y": r["x"] * 2}

    ds = cd.Dataset.from_dict({"x": [1, 2, 3]})
    with pytest.warns(UserWarning, match="could not be hashed"):
        out = ds.map(fn)
    with pytest.warns(UserWarning):
        ds.map(fn)
    assert out["y"] == [2, 4, 6] and len(calls) == 6


def test_num_proc_gives_the_same_rows_and_caches(csv_file):
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")

    def fn(batch, idx):
        return {"n": [len(t) for t in batch["text"]], "idx": idx}

    single = ds.map(fn, batched=True, with_indices=True, batch_size=64)
    multi = ds.map(fn, batched=True, with_indices=True, batch_size=64, num_proc=2, load_from_cache_file=False)
    assert multi.to_dict() == single.to_dict()
    assert len(multi.cache_files) == 2
    again = ds.shuffle(seed=0).map(fn, batched=True, with_indices=True, num_proc=2)
    assert again["idx"] == list(range(500))


def test_filter_num_proc_matches_single_process(csv_file):
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train").shuffle(seed=1)
    single = ds.filter(lambda r, i: r["label"] == "neg" and i % 2 == 0, with_indices=True)
    multi = ds.filter(
        lambda r, i: r["label"] == "neg" and i % 2 == 0, with_indices=True, num_proc=2, keep_in_memory=True
    )
    assert multi.to_dict() == single.to_dict() and 0 < len(multi) < 500
    assert list(multi) == multi.to_list()


def test_num_proc_worker_errors_surface():
    ds = cd.Dataset.from_dict({"x": list(range(20))})

    def bad(r):
        if r["x"] == 15:
            raise RuntimeError("boom at 15")
        return r

    with pytest.raises(DatasetError, match="boom at 15"):
        ds.map(bad, num_proc=2)


def test_filter_is_cached_as_indices(csv_file, tmp_path):
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")
    log = str(tmp_path / "calls.log")

    def keep(r):
        with open(log, "a") as f:
            f.write("x")
        return r["label"] == "neg"

    a = ds.filter(keep)
    b = ds.filter(keep)
    assert _calls(tmp_path / "calls.log") == 500 and len(a) == len(b) == 167
    assert set(a["label"]) == {"neg"}


# --- memory mapping ------------------------------------------------------------------------------


def test_loaded_data_is_memory_mapped_not_copied(tmp_path):
    path = tmp_path / "big.jsonl"
    with open(path, "w") as f:
        for i in range(60_000):
            f.write(json.dumps({"i": i, "text": "x" * 200}) + "\n")
    ds = cd.load_dataset("json", data_files=str(path), split="train")
    assert ds.data.nbytes > 10_000_000
    before = pa.total_allocated_bytes()
    again = cd.load_dataset("json", data_files=str(path), split="train")  # served from the cache file
    shuffled = again.shuffle(seed=0)
    assert pa.total_allocated_bytes() - before < 2_000_000  # the indices live in numpy, the data on disk
    assert shuffled[0]["text"] == "x" * 200
    assert ds.cache_files and ds.cache_files[0]["filename"].endswith(".arrow")


# --- errors ------------------------------------------------------------------------------------------


def test_clear_errors(tmp_path, csv_file):
    with pytest.raises(DatasetNotFoundError, match=r"nope\.csv"):
        cd.load_dataset("csv", data_files=str(tmp_path / "nope.csv"))
    with pytest.raises(FileNotFoundError):  # the built-in it resembles
        cd.load_dataset("csv", data_files=str(tmp_path / "*.parquet"))
    with pytest.raises(DatasetError, match=r"Unknown split 'dev'.*\['train'\]"):
        cd.load_dataset("csv", data_files=str(csv_file), split="dev")
    with pytest.raises(DatasetError, match="Bad split"):
        cd.load_dataset("csv", data_files=str(csv_file), split="train[::2]")
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")
    with pytest.raises(DatasetError, match=r"\['nope'\].*\['text', 'label'\]"):
        ds.remove_columns("nope")
    with pytest.raises(DatasetError, match="nope"):
        ds.map(lambda r: r, remove_columns=["nope"])
    with pytest.raises(DatasetError, match="'nope'"):
        ds["nope"]
    with pytest.raises(DatasetIndexError, match="500"):
        ds[500]
    with pytest.raises(IndexError):
        ds.select([0, 999])
    with pytest.raises(DatasetError, match="ClassLabel"):
        ds.train_test_split(test_size=0.2, stratify_by_column="label")
    with pytest.raises(DatasetError, match="'maybe'"):
        ds.cast_column("label", cd.ClassLabel(names=["pos", "maybe"]))
    with pytest.raises(DatasetError, match=r"test_size=2\.0"):
        ds.train_test_split(test_size=2.0)
    with pytest.raises(DatasetError, match="remove_columns"):
        ds.map(lambda b: {"w": [w for t in b["text"] for w in t.split()]}, batched=True)
    with pytest.raises(DatasetError, match="Unknown format"):
        ds.with_format("tensorflow")


# --- repo folders and the hub --------------------------------------------------------------------


def test_repo_folder_with_configs_block(tmp_path):
    repo = tmp_path / "repo"
    (repo / "raw").mkdir(parents=True)
    (repo / "raw" / "a.tsv").write_text("q\tn\nfirst\t1\nsecond\t2\n")
    (repo / "raw" / "b.tsv").write_text("q\tn\nthird\t3\n")
    (repo / "raw" / "fr.tsv").write_text("q\tn\npremier\t1\n")
    (repo / "README.md").write_text(
        textwrap.dedent(
            """\
            ---
            configs:
            - config_name: en
              default: true
              data_files:
              - split: train
                path: raw/a.tsv
              - split: test
                path: raw/b.tsv
            - config_name: fr
              data_files: raw/fr.tsv
              sep: "\\t"
            ---
            # A dataset card
            """
        )
    )
    en = cd.load_dataset(str(repo))
    assert sorted(en) == ["test", "train"]
    assert en["train"]["q"] == ["first", "second"] and en["test"]["n"] == [3]
    fr = cd.load_dataset(str(repo), name="fr", split="train")
    assert fr.to_dict() == {"q": ["premier"], "n": [1]}
    with pytest.raises(DatasetError, match=r"'de'.*\['en', 'fr'\]"):
        cd.load_dataset(str(repo), name="de")
    assert cd.load_dataset_from_folder(repo, split="train[1:]")["q"] == ["second"]


def test_repo_folder_cannot_name_files_outside_it(tmp_path):
    (tmp_path / "secret.csv").write_text("a\n1\n")
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "README.md").write_text(
        "---\nconfigs:\n- config_name: default\n  data_files: ../secret.csv\n---\n"
    )
    with pytest.raises(DatasetError, match="outside the dataset folder"):
        cd.load_dataset(str(repo))
    # a snapshot folder of symlinks into a blob store (what the hub client hands over) is fine
    (repo / "link.csv").symlink_to(tmp_path / "secret.csv")
    (repo / "README.md").write_text("---\nconfigs:\n- config_name: default\n  data_files: link.csv\n---\n")
    assert cd.load_dataset(str(repo), split="train")["a"] == [1]


def test_repo_names_resolve_through_the_hub_client(tmp_path, monkeypatch):
    import cove.hub.resolve as hub_resolve

    repo = tmp_path / "snap"
    (repo / "data").mkdir(parents=True)
    (repo / "data" / "train-00000-of-00001.jsonl").write_text('{"a": 1}\n{"a": 2}\n')
    (repo / "data" / "test-00000-of-00001.jsonl").write_text('{"a": 3}\n')
    asked = []

    def resolve_dataset_dir(name, revision=None, token=None):
        asked.append((name, revision, token))
        if name != "me/tiny":
            raise FileNotFoundError(f"no repo {name}")
        return repo

    monkeypatch.setattr(hub_resolve, "resolve_dataset_dir", resolve_dataset_dir, raising=False)
    dd = cd.load_dataset("me/tiny", revision="v1", token="t0k")
    assert dd["train"]["a"] == [1, 2] and dd["test"]["a"] == [3]
    assert asked == [("me/tiny", "v1", "t0k")]
    with pytest.raises(DatasetNotFoundError, match="some-user/some-data"):
        cd.load_dataset("some-user/some-data")
    monkeypatch.delattr(hub_resolve, "resolve_dataset_dir")
    with pytest.raises(DatasetNotFoundError, match="some-user/some-data"):
        cd.load_dataset("some-user/some-data")


def test_write_hub_folder_round_trips(tmp_path):
    train = cd.Dataset.from_dict({"t": ["a", "b", "c"], "l": [0, 1, 0]}).cast_column(
        "l", cd.ClassLabel(names=["no", "yes"])
    )
    dd = cd.DatasetDict({"train": train, "test": train.select([2])})
    folder = dd.write_hub_folder(tmp_path / "out")
    card = (folder / "README.md").read_text()
    assert "configs:" in card and "class_label" in card
    back = cd.load_dataset(str(folder))
    assert sorted(back) == ["test", "train"]
    assert back["train"].to_dict() == train.to_dict()
    assert back["train"].features == train.features  # ClassLabel survives through the parquet metadata


def test_push_to_hub_hands_the_folder_to_the_hub_client(tmp_path, monkeypatch):
    hub = pytest.importorskip("cove.hub")
    if not hasattr(hub, "upload_folder"):
        pytest.skip("cove.hub.upload_folder is not there yet")
    seen = {}

    def fake_upload(repo_id, folder, token=None, repo_type=None, commit_message=None, revision=None):
        seen.update(repo_id=repo_id, repo_type=repo_type, msg=commit_message)
        seen["data"] = cd.load_dataset(folder, split="train").to_dict()
        return "ok"

    def fake_create(repo_id, token=None, private=False, exist_ok=False, repo_type=None):
        seen["created"] = (repo_id, repo_type)

    monkeypatch.setattr(hub, "upload_folder", fake_upload)
    monkeypatch.setattr(hub, "create_repo", fake_create, raising=False)
    ds = cd.Dataset.from_dict({"x": [1, 2]})
    assert ds.push_to_hub("me/tiny", commit_message="first") == "ok"
    assert seen == {
        "created": ("me/tiny", "dataset"),
        "repo_id": "me/tiny",
        "repo_type": "dataset",
        "msg": "first",
        "data": {"x": [1, 2]},
    }


# --- misc API --------------------------------------------------------------------------------------


def test_formats_concat_and_save(tmp_path):
    ds = cd.Dataset.from_dict({"a": [1, 2, 3], "b": ["x", "y", "z"]})
    both = cd.concatenate_datasets([ds.select([2, 0]), ds])
    assert both["a"] == [3, 1, 1, 2, 3]
    with ds.formatted_as("numpy"):
        assert isinstance(ds["a"], np.ndarray)
    assert ds["a"] == [1, 2, 3]
    ds.set_format("torch", columns=["a"])
    assert list(ds[0]) == ["a"]
    ds.reset_format()
    ds.shuffle(seed=1).save_to_disk(tmp_path / "saved")
    back = cove.load_from_disk(tmp_path / "saved")
    assert sorted(back["a"]) == [1, 2, 3] and back.cache_files


def test_take_skip_and_to_iterable():
    ds = cd.Dataset.from_dict({"a": list(range(10))}).shuffle(seed=2)
    assert ds.take(3)["a"] == ds["a"][:3] and ds.skip(8)["a"] == ds["a"][8:]
    assert len(ds.take(50)) == 10 and len(ds.skip(50)) == 0
    stream = ds.to_iterable_dataset().filter(lambda r: r["a"] % 2 == 0).map(lambda r: {"b": r["a"] * 10})
    assert list(stream) == [{"a": a, "b": a * 10} for a in ds["a"] if a % 2 == 0]


def test_larger_than_a_map_batch_streams_in_constant_memory(tmp_path):
    path = tmp_path / "s.txt"
    with open(path, "w") as f:
        for i in range(20_000):
            f.write(f"line {i}\n")
    stream = cd.load_dataset("text", data_files=str(path), split="train", streaming=True)
    assert isinstance(stream, cd.IterableDataset)
    out = list(stream.skip(10).take(3).map(lambda r: {"n": len(r["text"])}))
    assert out == [{"text": "line 10", "n": 7}, {"text": "line 11", "n": 7}, {"text": "line 12", "n": 7}]
    lens = [
        r["text"] for r in stream.shuffle(seed=0, buffer_size=50).filter(lambda r: r["text"].endswith("7"))
    ]
    assert len(lens) == 2000 and lens != sorted(lens, key=lambda t: int(t.split()[1]))
    dd = cd.load_dataset("text", data_files={"train": str(path)}, streaming=True)
    assert isinstance(dd, cd.IterableDatasetDict)


def test_rerun_of_a_cached_map_is_fast(csv_file):
    ds = cd.load_dataset("csv", data_files=str(csv_file), split="train")

    def slow(batch):
        time.sleep(0.2)
        return {"n": [len(t) for t in batch["text"]]}

    start = time.perf_counter()
    ds.map(slow, batched=True, batch_size=100)
    first = time.perf_counter() - start
    start = time.perf_counter()
    ds.map(slow, batched=True, batch_size=100)
    assert time.perf_counter() - start < first / 4


@pytest.mark.slow
def test_working_set_stays_far_below_the_data_size(tmp_path):
    """Shuffle, map and read a ~150 MB dataset: its rows stay in the page cache (file-backed, evictable)
    and the process's own anonymous memory grows far less than the data size, so data larger than RAM works.
    (Converting the file is a separate, chunked step: a first process does it.)"""
    script = textwrap.dedent(
        """
        import json, os, sys
        def anon_mb():
            return int([l for l in open("/proc/self/status") if l.startswith("RssAnon")][0].split()[1]) // 1024
        import cove.data as cd
        path = sys.argv[1]
        if sys.argv[2] == "convert":
            with open(path, "w") as f:
                for i in range(150_000):
                    f.write(json.dumps({"i": i, "text": "y" * 1000}) + "\\n")
            cd.load_dataset("json", data_files=path, split="train")
            sys.exit(0)
        base = anon_mb()
        ds = cd.load_dataset("json", data_files=path, split="train").shuffle(seed=0)
        out = ds.map(lambda b: {"n": [len(t) for t in b["text"]]}, batched=True, remove_columns=["text"])
        assert sum(out["n"]) == 150_000 * 1000
        assert sum(len(r["text"]) for r in ds.select(range(0, 150_000, 50))) == 3000 * 1000
        print(anon_mb() - base, ds.data.nbytes >> 20)
        """
    )
    env = {**os.environ, "COVE_DATASETS_CACHE": str(tmp_path / "cache")}
    path = str(tmp_path / "big.jsonl")
    subprocess.run([sys.executable, "-c", script, path, "convert"], env=env, check=True)
    out = subprocess.run(
        [sys.executable, "-c", script, path, "use"], capture_output=True, text=True, env=env, check=True
    ).stdout.split()
    grown_mb, data_mb = int(out[0]), int(out[1])
    assert data_mb >= 140
    assert grown_mb < data_mb * 0.4, f"anonymous memory grew {grown_mb} MiB for {data_mb} MiB of data"


def test_map_cache_is_reused_by_a_new_process(tmp_path, csv_file):
    script = textwrap.dedent(
        """
        import sys
        import cove.data as cd
        LOG = sys.argv[2]
        STOP = {"the", "a"}
        def words(batch):
            with open(LOG, "a") as f:
                f.write("x")
            return {"words": [[w for w in t.split() if w not in STOP] for t in batch["text"]]}
        ds = cd.load_dataset("csv", data_files=sys.argv[1], split="train").shuffle(seed=3)
        out = ds.map(words, batched=True, batch_size=100)
        print(out.cache_files[0]["filename"], out[0]["words"])
        """
    )
    env = {**os.environ, "COVE_DATASETS_CACHE": str(tmp_path / "cache")}
    log = tmp_path / "log"
    runs = [
        subprocess.run(
            [sys.executable, "-c", script, str(csv_file), str(log)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        ).stdout
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    assert log.read_text() == "x" * 5  # 5 batches, computed once


def test_push_to_hub_then_load_by_name_through_the_embedded_hub(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("cove.hub.local") is None:
        pytest.skip("the hub client (cove.hub.local) is not in this tree yet")
    monkeypatch.setenv("COVE_DATA_DIR", str(tmp_path / "hub-data"))
    monkeypatch.delenv("COVE_ENDPOINT", raising=False)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    ds = cd.Dataset.from_dict({"text": ["a", "b", "c"], "label": ["x", "y", "x"]}).class_encode_column(
        "label"
    )
    cd.DatasetDict({"train": ds, "test": ds.select([0])}).push_to_hub("me/tiny", commit_message="add data")
    back = cd.load_dataset("me/tiny")
    assert sorted(back) == ["test", "train"]
    assert back["train"].to_dict() == ds.to_dict() and back["train"].features == ds.features
    assert cd.load_dataset("me/tiny", split="train[1:]")["text"] == ["b", "c"]
