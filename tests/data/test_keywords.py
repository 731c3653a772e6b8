"""The keywords Dataset methods take: a misspelled one raises TypeError; datasets keywords Cove cannot honour
raise a DatasetError naming them unless left at a value with Cove's behaviour; the ones Cove honours
change the result (the parity file checks the names against datasets' signatures)."""

from __future__ import annotations

import pytest

import cove.data as cd
from cove.errors import DatasetError


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATASETS_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def ds():
    return cd.Dataset.from_dict({"text": ["a", "b", "c", "d", "e", "f"], "label": [1, 0, 1, 0, 1, 1]})


def test_a_misspelled_keyword_is_a_type_error_not_ignored(ds):
    with pytest.raises(TypeError, match="sed"):
        ds.shuffle(sed=42)
    with pytest.raises(TypeError, match="batchd"):
        ds.map(lambda r: r, batchd=True)
    with pytest.raises(TypeError, match="revers"):
        cd.DatasetDict({"train": ds}).sort("label", revers=True)
    with pytest.raises(TypeError, match="buffersize"):
        ds.to_iterable_dataset().shuffle(seed=0, buffersize=10)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda ds: ds.map(lambda r: r, try_original_type=False), "try_original_type"),
        (lambda ds: ds.map(lambda r: r, disable_nullable=True), "disable_nullable"),
        (lambda ds: ds.map(lambda r: r, on_mixed_types="strict"), "on_mixed_types"),
        (lambda ds: cd.Dataset.from_dict({"a": [1]}, info=object()), "info"),
        (lambda ds: cd.concatenate_datasets([ds, ds], info=object()), "info"),
        (lambda ds: ds.save_to_disk("s3://bucket/x", storage_options={"key": "k"}), "storage_options"),
        (lambda ds: cd.load_from_disk("s3://bucket/x", storage_options={"key": "k"}), "storage_options"),
        (lambda ds: ds.push_to_hub("me/x", create_pr=True), "create_pr"),
        (lambda ds: ds.push_to_hub("me/x", num_shards=4), "num_shards"),
        (lambda ds: ds.push_to_hub("me/x", max_shard_size="1MB"), "max_shard_size"),
        (lambda ds: ds.push_to_hub("me/x", config_name="other", set_default=True), "set_default"),
    ],
)
def test_a_keyword_cove_cannot_honour_raises_naming_it(ds, call, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where "s3://bucket/x" would land if storage_options were ignored
    with pytest.raises(DatasetError, match=f"{name}=.*is not supported"):
        call(ds)


def test_the_defaults_of_those_keywords_are_accepted(ds):
    out = ds.map(lambda r: r, try_original_type=True, disable_nullable=False, on_mixed_types="use_json")
    assert out.to_dict() == ds.to_dict()
    assert cd.Dataset.from_dict({"a": [1]}, info=None, on_mixed_types=None).to_dict() == {"a": [1]}


def test_split_and_fingerprint_keywords_are_honoured(ds):
    assert cd.Dataset.from_dict({"a": [1]}, split="validation").split == "validation"
    assert cd.Dataset.from_list([{"a": 1}], split="test").split == "test"
    assert cd.concatenate_datasets([ds, ds], split="train").split == "train"
    assert ds.rename_column("text", "t", new_fingerprint="fp-rename")._fingerprint == "fp-rename"
    assert ds.remove_columns("text", new_fingerprint="fp-remove")._fingerprint == "fp-remove"
    assert ds.cast_column("label", cd.Value("int32"), new_fingerprint="fp-cast")._fingerprint == "fp-cast"
    parts = ds.train_test_split(test_size=2, seed=0, train_new_fingerprint="tr", test_new_fingerprint="te")
    assert (parts["train"]._fingerprint, parts["test"]._fingerprint) == ("tr", "te")


def test_add_column_takes_a_feature(ds):
    label = cd.ClassLabel(names=["neg", "pos"])
    out = ds.add_column("tag", ["pos", "neg", "pos", "pos", "neg", "neg"], feature=label)
    assert out.features["tag"] == label
    assert out["tag"] == [1, 0, 1, 1, 0, 0]


def test_cast_keep_in_memory_cache_file_name_and_load_from_cache_file(ds, tmp_path):
    wanted = cd.Features({"text": cd.Value("string"), "label": cd.Value("int8")})
    in_memory = ds.cast(wanted, keep_in_memory=True)
    assert in_memory.cache_files == [] and in_memory.features == wanted
    assert in_memory.to_dict() == ds.to_dict()
    target = tmp_path / "cast.arrow"
    on_disk = ds.cast(wanted, cache_file_name=str(target))
    assert on_disk.cache_files == [{"filename": str(target)}] and target.exists()
    before = target.stat().st_mtime_ns
    ds.cast(wanted, cache_file_name=str(target))  # read back, not rewritten
    assert target.stat().st_mtime_ns == before
    again = ds.cast(wanted, cache_file_name=str(target), load_from_cache_file=False)
    assert target.stat().st_mtime_ns != before and again.to_dict() == ds.to_dict()


def test_filter_cache_file_name_places_the_kept_positions(ds, tmp_path):
    target = tmp_path / "kept.arrow"
    out = ds.filter(lambda r: r["label"] == 1, cache_file_name=str(target))
    assert out["text"] == ["a", "c", "e", "f"]
    assert (tmp_path / "kept.indices.npy").exists()


def test_map_suffix_template_names_the_workers_files(ds, tmp_path):
    target = tmp_path / "mapped.arrow"
    out = ds.map(
        lambda r: {"n": len(r["text"])},
        num_proc=2,
        cache_file_name=str(target),
        suffix_template="_part{rank}",
    )
    assert sorted(p.name for p in tmp_path.glob("mapped_part*.arrow")) == [
        "mapped_part0.arrow",
        "mapped_part1.arrow",
    ]
    assert out["n"] == [1] * 6
    with pytest.raises(DatasetError, match="rank"):
        ds.map(lambda r: r, num_proc=2, cache_file_name=str(tmp_path / "m2.arrow"), suffix_template="_same")


def test_save_to_disk_max_shard_size(tmp_path):
    big = cd.Dataset.from_dict({"x": list(range(20_000))})
    big.save_to_disk(tmp_path / "one")
    big.save_to_disk(tmp_path / "many", max_shard_size="40KB")
    assert len(list((tmp_path / "one").glob("*.arrow"))) == 1
    assert len(list((tmp_path / "many").glob("*.arrow"))) == 4  # 160,000 bytes of int64 in 40 kB shards
    assert cd.load_from_disk(tmp_path / "many").to_dict() == big.to_dict()
    with pytest.raises(DatasetError, match="both"):
        big.save_to_disk(tmp_path / "x", max_shard_size=1000, num_shards=2)
    with pytest.raises(DatasetError, match="max_shard_size"):
        big.save_to_disk(tmp_path / "y", max_shard_size="lots")


def test_flatten_indices_passes_its_keywords_to_map(ds):
    flat = ds.select([3, 1]).flatten_indices(keep_in_memory=True, new_fingerprint="flat")
    assert flat.to_dict() == {"text": ["d", "b"], "label": [0, 0]}
    assert flat._indices is None and flat.cache_files == [] and flat._fingerprint == "flat"


def test_datasetdict_per_split_keywords(ds, tmp_path):
    splits = cd.DatasetDict({"train": ds, "test": ds.select([0, 1])})
    out = splits.map(lambda r: r, cache_file_names={"train": str(tmp_path / "tr.arrow")})
    assert out["train"].cache_files == [{"filename": str(tmp_path / "tr.arrow")}]
    with pytest.raises(DatasetError, match="validation"):
        splits.map(lambda r: r, cache_file_names={"validation": "x.arrow"})
    tagged = splits.map(lambda r, split: {"split": split}, with_split=True)
    assert tagged["test"]["split"] == ["test", "test"]
    assert splits.shuffle(seeds=3)["train"]["text"] == ds.shuffle(seed=3)["text"]
    with pytest.raises(DatasetError, match="both"):
        splits.shuffle(seed=1, seeds=2)


def test_from_generator_encodes_rows_to_the_features():
    features = cd.Features({"text": cd.Value("string"), "label": cd.ClassLabel(names=["neg", "pos"])})

    def rows(n):
        for i in range(n):
            yield {"text": str(i), "label": "pos" if i % 2 else "neg"}

    stream = cd.IterableDataset.from_generator(rows, features=features, gen_kwargs={"n": 3}, split="train")
    assert list(stream) == [{"text": "0", "label": 0}, {"text": "1", "label": 1}, {"text": "2", "label": 0}]
    assert stream.features == features and stream.split == "train"


def test_reader_options_follow_datasets_builder_configs(ds, tmp_path):
    ds.to_json(tmp_path / "rows.jsonl")
    ds.to_parquet(tmp_path / "rows.parquet")
    (tmp_path / "bad.txt").write_bytes(b"caf\xe9\nok\n")
    with pytest.raises(TypeError, match="feild"):
        cd.load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), split="train", feild="x")
    for builder, option, name in [
        ("json", {"encoding": "latin-1"}, "encoding"),
        ("json", {"newlines_in_values": True}, "newlines_in_values"),
        ("parquet", {"filters": [("label", "=", 1)]}, "filters"),
        ("text", {"sample_by": "paragraph"}, "sample_by"),
    ]:
        suffix = {"json": "rows.jsonl", "parquet": "rows.parquet", "text": "bad.txt"}[builder]
        with pytest.raises(DatasetError, match=f"{name}=.*is not supported"):
            cd.load_dataset(builder, data_files=str(tmp_path / suffix), split="train", **option)
    text = cd.load_dataset(
        "text", data_files=str(tmp_path / "bad.txt"), split="train", encoding_errors="replace"
    )
    assert text["text"] == ["caf\ufffd", "ok"]
    kept = cd.load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), split="train", use_threads=False)
    assert kept.to_dict() == ds.to_dict()
