"""cove.data against the `datasets` library on the same data: rows, column order, features, seeds."""

from __future__ import annotations

import json
import os
import random
import string

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
hf = pytest.importorskip("datasets")
hf.disable_progress_bars()
hf.disable_caching()  # in-memory reference results; Cove's own caching is tested in tests/data

import cove.data as cd  # noqa: E402
from cove.errors import DatasetError  # noqa: E402

pytestmark = pytest.mark.parity


@pytest.fixture(autouse=True)
def _cove_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COVE_DATASETS_CACHE", str(tmp_path / "cove-cache"))


def assert_same(ours, theirs):
    assert ours.column_names == theirs.column_names
    assert repr(ours.features) == repr(theirs.features)
    assert ours.features.to_dict() == theirs.features.to_dict()
    assert len(ours) == len(theirs)
    assert ours.to_dict() == theirs.to_dict()


def _rows(n=60, seed=0):
    rng = random.Random(seed)
    return {
        "id": list(range(n)),
        "text": [
            " ".join(rng.choice(["cove", "arrow", "data", "map", "rows"]) for _ in range(rng.randint(1, 6)))
            for _ in range(n)
        ],
        "label": [rng.choice(["neg", "pos", "neutral"]) for _ in range(n)],
        "score": [round(rng.random(), 3) for _ in range(n)],
        "tags": [[rng.randint(0, 9) for _ in range(rng.randint(0, 3))] for _ in range(n)],
    }


@pytest.fixture
def pair():
    data = _rows()
    return cd.Dataset.from_dict(data), hf.Dataset.from_dict(data)


# --- features ---------------------------------------------------------------------------------


def test_inferred_features_match(pair):
    ours, theirs = pair
    assert_same(ours, theirs)


def test_declared_features_reprs_and_dicts():
    spec = {
        "a": ("Value", "int32"),
        "b": ("ClassLabel", ["x", "y", "z"]),
        "c": ("Seq", "float32"),
        "d": ("SeqFixed", "int8"),
        "e": ("Struct", None),
    }

    def build(lib):
        out = {}
        for name, (kind, arg) in spec.items():
            if kind == "Value":
                out[name] = lib.Value(arg)
            elif kind == "ClassLabel":
                out[name] = lib.ClassLabel(names=arg)
            elif kind == "Seq":
                out[name] = lib.Sequence(lib.Value(arg))
            elif kind == "SeqFixed":
                out[name] = lib.Sequence(lib.Value(arg), length=2)
            else:
                out[name] = {"x": lib.Value("string"), "y": lib.Sequence({"z": lib.Value("int64")})}
        return lib.Features(out)

    ours, theirs = build(cd), build(hf)
    assert repr(ours) == repr(theirs)
    assert ours.to_dict() == theirs.to_dict()
    assert ours.arrow_schema.types == theirs.arrow_schema.types
    assert repr(cd.Features.from_dict(theirs.to_dict())) == repr(theirs)
    data = {
        "a": [1, 2],
        "b": ["y", "z"],
        "c": [[1.5], []],
        "d": [[1, 2], [3, 4]],
        "e": [{"x": "p", "y": {"z": [1]}}] * 2,
    }
    assert_same(cd.Dataset.from_dict(data, features=ours), hf.Dataset.from_dict(data, features=theirs))


def test_from_list_and_pandas():
    rows = [{"a": 1, "b": "x"}, {"a": 2, "b": None}, {"a": None, "b": "z"}]
    assert_same(cd.Dataset.from_list(rows), hf.Dataset.from_list(rows))
    import pandas as pd

    df = pd.DataFrame({"a": [1, 2, 3], "f": [0.5, 1.5, 2.5], "s": ["p", "q", "r"]})
    ours, theirs = cd.Dataset.from_pandas(df), hf.Dataset.from_pandas(df)
    assert_same(ours, theirs)
    assert ours.to_pandas().equals(theirs.to_pandas())
    assert ours.to_list() == theirs.to_list()


# --- file loading -----------------------------------------------------------------------------


@pytest.fixture
def files(tmp_path):
    data = _rows(40)
    import pandas as pd

    df = pd.DataFrame({k: v for k, v in data.items() if k != "tags"})
    df.iloc[:25].to_csv(tmp_path / "train.csv", index=False)
    df.iloc[25:].to_csv(tmp_path / "test.csv", index=False)
    with open(tmp_path / "rows.jsonl", "w") as f:
        for i in range(40):
            f.write(json.dumps({k: data[k][i] for k in data}) + "\n")
    with open(tmp_path / "rows.json", "w") as f:
        json.dump([{k: data[k][i] for k in data} for i in range(10)], f)
    with open(tmp_path / "lines.txt", "w") as f:
        f.write("first line\n\nthird line\r\nfourth\n")
    hf.Dataset.from_dict(data).to_parquet(str(tmp_path / "rows.parquet"))
    return tmp_path


@pytest.mark.parametrize(
    ("builder", "data_files"),
    [
        ("csv", {"train": "train.csv", "test": "test.csv"}),
        ("csv", "*.csv"),
        ("json", "rows.jsonl"),
        ("json", "rows.json"),
        ("parquet", "rows.parquet"),
        ("text", "lines.txt"),
    ],
)
def test_load_files_match(files, builder, data_files):
    def absolute(spec):
        if isinstance(spec, dict):
            return {k: str(files / v) for k, v in spec.items()}
        return str(files / spec)

    ours = cd.load_dataset(builder, data_files=absolute(data_files))
    theirs = hf.load_dataset(builder, data_files=absolute(data_files), cache_dir=str(files / "hf-cache"))
    assert sorted(ours) == sorted(theirs)
    for split in theirs:
        assert_same(ours[split], theirs[split])


def test_load_folder_by_file_name_convention(tmp_path):
    folder = tmp_path / "repo"
    (folder / "data").mkdir(parents=True)
    for split, n in (("train", 12), ("validation", 5), ("test", 7)):
        with open(folder / "data" / f"{split}.jsonl", "w") as f:
            for i in range(n):
                f.write(json.dumps({"i": i, "split": split}) + "\n")
    ours = cd.load_dataset(str(folder))
    theirs = hf.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    assert sorted(ours) == sorted(theirs) == ["test", "train", "validation"]
    for split in theirs:
        assert_same(ours[split], theirs[split])


SPLITS = [
    "train",
    "train[:10%]",
    "train[10:20]",
    "train[-5:]",
    "train[:-10%]",
    "train[33%:66%]",
    "train[50%:]",
    "train[:3]+test[-2:]",
    "train+test",
    "test[:200]",
]


@pytest.mark.parametrize("split", SPLITS)
def test_split_slicing_matches(files, split):
    data_files = {"train": str(files / "train.csv"), "test": str(files / "test.csv")}
    ours = cd.load_dataset("csv", data_files=data_files, split=split)
    theirs = hf.load_dataset("csv", data_files=data_files, split=split, cache_dir=str(files / "hf-cache"))
    assert_same(ours, theirs)


# --- map / filter -----------------------------------------------------------------------------


def _tokenize(batch):
    return {
        "input_ids": [[ord(c) for c in t[:8]] for t in batch["text"]],
        "attention_mask": [[1] * len(t[:8]) for t in batch["text"]],
    }


def _add_prefix(example, idx, prefix):
    return {"text": f"{prefix}{idx}:{example['text']}", "n": len(example["text"])}


def _explode(batch):
    return {"word": [w for t in batch["text"] for w in t.split()]}


MAPS = [
    ("batched tokenizer columns", dict(function=_tokenize, batched=True, batch_size=7)),
    ("remove_columns", dict(function=_tokenize, batched=True, remove_columns=["text", "tags"])),
    ("with_indices and fn_kwargs", dict(function=_add_prefix, with_indices=True, fn_kwargs={"prefix": "#"})),
    (
        "rows change count",
        dict(
            function=_explode,
            batched=True,
            batch_size=5,
            remove_columns=["id", "text", "label", "score", "tags"],
        ),
    ),
    ("input_columns", dict(function=lambda text: {"upper": text.upper()}, input_columns="text")),
    (
        "returns float32 array",
        dict(function=lambda b: {"score": np.asarray(b["score"], dtype=np.float32)}, batched=True),
    ),
    ("identity", dict(function=None)),
]


@pytest.mark.parametrize(("name", "kwargs"), MAPS, ids=[m[0] for m in MAPS])
def test_map_matches(pair, name, kwargs):
    ours, theirs = pair
    assert_same(ours.map(**kwargs), theirs.map(**kwargs))


def test_map_keeps_class_label(pair):
    ours, theirs = (ds.class_encode_column("label") for ds in pair)
    fn = {"function": lambda b: {"label": b["label"], "twice": [2 * x for x in b["label"]]}, "batched": True}
    assert_same(ours.map(**fn), theirs.map(**fn))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(function=lambda r: r["score"] > 0.5),
        dict(function=lambda b: [len(t) > 10 for t in b["text"]], batched=True, batch_size=9),
        dict(function=lambda r, i: i % 3 == 0, with_indices=True),
        dict(function=lambda label: label == "pos", input_columns="label"),
    ],
)
def test_filter_matches(pair, kwargs):
    ours, theirs = pair
    assert_same(ours.filter(**kwargs), theirs.filter(**kwargs))


# --- index transforms ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [0, 1, 42, 1234])
def test_shuffle_same_seed_same_order(pair, seed):
    ours, theirs = pair
    assert_same(ours.shuffle(seed=seed), theirs.shuffle(seed=seed))
    gen_ours, gen_theirs = np.random.default_rng(seed), np.random.default_rng(seed)
    assert_same(ours.shuffle(generator=gen_ours), theirs.shuffle(generator=gen_theirs))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(test_size=0.2, seed=3),
        dict(test_size=7, seed=5),
        dict(train_size=0.5, test_size=0.3, seed=0),
        dict(train_size=20, seed=11),
        dict(test_size=0.25, shuffle=False),
        dict(test_size=0.3, seed=2, stratify_by_column="label"),
        dict(test_size=9, seed=8, stratify_by_column="label"),
    ],
)
def test_train_test_split_matches(pair, kwargs):
    ours, theirs = (ds.class_encode_column("label") for ds in pair)
    a, b = ours.train_test_split(**kwargs), theirs.train_test_split(**kwargs)
    assert list(a) == list(b) == ["train", "test"]
    for split in ("train", "test"):
        assert_same(a[split], b[split])


def test_chained_index_transforms(pair):
    ours, theirs = pair

    def chain(ds):
        ds = ds.shuffle(seed=7).filter(lambda r: r["id"] % 2 == 0).select(range(3, 20)).sort("label")
        return ds.shuffle(seed=1).select([5, 0, 3])

    assert_same(chain(ours), chain(theirs))


@pytest.mark.parametrize(
    ("columns", "reverse"),
    [("score", False), ("label", True), (["label", "score"], [False, True]), (["label", "id"], True)],
)
def test_sort_matches(pair, columns, reverse):
    ours, theirs = pair
    assert_same(ours.sort(columns, reverse=reverse), theirs.sort(columns, reverse=reverse))


def test_sort_with_nulls():
    data = {"x": [3, None, 1, 2, None], "y": list("abcde")}
    for placement in ("at_end", "at_start"):
        assert_same(
            cd.Dataset.from_dict(data).sort("x", null_placement=placement),
            hf.Dataset.from_dict(data).sort("x", null_placement=placement),
        )


def test_select_and_indexing(pair):
    ours, theirs = pair
    for indices in ([5, 1, 1, 30], range(4, 9), np.array([0, 59])):
        assert_same(ours.select(indices), theirs.select(indices))
    assert ours[3] == theirs[3]
    assert ours[-1] == theirs[-1]
    assert ours[2:9:3] == theirs[2:9:3]
    assert ours[[4, 2]] == theirs[[4, 2]]
    assert ours["text"] == list(theirs["text"])
    shuffled = (ours.shuffle(seed=3), theirs.shuffle(seed=3))
    assert shuffled[0][10:15] == shuffled[1][10:15]


# --- column transforms ----------------------------------------------------------------------------


def test_column_ops_match(pair):
    ours, theirs = pair
    assert_same(ours.rename_column("text", "sentence"), theirs.rename_column("text", "sentence"))
    assert_same(
        ours.rename_columns({"id": "idx", "score": "s"}), theirs.rename_columns({"id": "idx", "score": "s"})
    )
    assert_same(ours.remove_columns(["tags", "id"]), theirs.remove_columns(["tags", "id"]))
    assert_same(ours.select_columns(["score", "id"]), theirs.select_columns(["score", "id"]))
    assert_same(
        ours.cast_column("score", cd.Value("float32")), theirs.cast_column("score", hf.Value("float32"))
    )
    assert_same(
        ours.cast_column("label", cd.ClassLabel(names=["pos", "neg", "neutral"])),
        theirs.cast_column("label", hf.ClassLabel(names=["pos", "neg", "neutral"])),
    )
    f_ours, f_theirs = ours.features, theirs.features
    f_ours["id"], f_theirs["id"] = cd.Value("int32"), hf.Value("int32")
    f_ours["tags"], f_theirs["tags"] = cd.Sequence(cd.Value("int16")), hf.Sequence(hf.Value("int16"))
    assert_same(ours.cast(f_ours), theirs.cast(f_theirs))
    assert sorted(ours.unique("label")) == sorted(theirs.unique("label"))


@pytest.mark.parametrize(
    "values",
    [["b", "a", "c", "a"], [10, 2, 3, 2], ["x", None, "y", "x"]],
)
@pytest.mark.parametrize("include_nulls", [False, True])
def test_class_encode_column_label_order(values, include_nulls):
    data = {"v": values, "k": list(range(len(values)))}
    assert_same(
        cd.Dataset.from_dict(data).class_encode_column("v", include_nulls=include_nulls),
        hf.Dataset.from_dict(data).class_encode_column("v", include_nulls=include_nulls),
    )


def test_empty_slice_is_an_error_in_both(files):
    data_files = {"train": str(files / "train.csv")}
    with pytest.raises(ValueError, match="no data"):
        hf.load_dataset("csv", data_files=data_files, split="train[7%:8%]", cache_dir=str(files / "hf-cache"))
    with pytest.raises(DatasetError, match="selects no rows"):
        cd.load_dataset("csv", data_files=data_files, split="train[7%:8%]")


def test_dataset_dict_class_encode_per_split():
    train, test = {"l": ["b", "a"]}, {"l": ["c", "b"]}
    ours = cd.DatasetDict({"train": cd.Dataset.from_dict(train), "test": cd.Dataset.from_dict(test)})
    theirs = hf.DatasetDict({"train": hf.Dataset.from_dict(train), "test": hf.Dataset.from_dict(test)})
    a, b = ours.class_encode_column("l"), theirs.class_encode_column("l")
    for split in ("train", "test"):
        assert_same(a[split], b[split])
    assert repr(a) == repr(b)


# --- formats ------------------------------------------------------------------------------------


def _same_value(x, y):
    import torch

    if isinstance(x, torch.Tensor):
        assert isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
    elif isinstance(x, np.ndarray):
        assert isinstance(y, np.ndarray) and x.dtype == y.dtype and x.shape == y.shape
        if x.dtype == object:
            for a, b in zip(x, y):
                _same_value(a, b)
        else:
            assert np.array_equal(x, y)
    elif isinstance(x, list):
        assert isinstance(y, list) and len(x) == len(y)
        for a, b in zip(x, y):
            _same_value(a, b)
    elif isinstance(x, dict):
        assert isinstance(y, dict) and list(x) == list(y)
        for k in x:
            _same_value(x[k], y[k])
    else:
        assert x == y, (x, y)


@pytest.mark.parametrize("fmt", ["numpy", "torch"])
def test_tensor_formats_match(fmt):
    data = {
        "i": [1, 2, 3],
        "f": [0.5, 1.5, 2.0],
        "s": ["a", "b", "c"],
        "l": [[1, 2], [3, 4], [5, 6]],
        "r": [[1], [2, 3], []],
    }
    ours, theirs = cd.Dataset.from_dict(data).with_format(fmt), hf.Dataset.from_dict(data).with_format(fmt)
    _same_value(ours[0], theirs[0])
    _same_value(ours[0:2], theirs[0:2])
    for column in ("i", "f", "l"):
        _same_value(ours[column], theirs[column][:])
    cols_ours = cd.Dataset.from_dict(data).with_format(fmt, columns=["i"], output_all_columns=True)
    cols_theirs = hf.Dataset.from_dict(data).with_format(fmt, columns=["i"], output_all_columns=True)
    _same_value(cols_ours[1], cols_theirs[1])


def test_pandas_and_arrow_formats_match(pair):
    ours, theirs = pair
    assert ours.with_format("pandas")[2:6].equals(theirs.with_format("pandas")[2:6])
    assert ours.with_format("arrow")[2:6].to_pydict() == theirs.with_format("arrow")[2:6].to_pydict()
    assert ours.format["columns"] == theirs.format["columns"]


# --- disk interop --------------------------------------------------------------------------------


def test_save_to_disk_is_readable_both_ways(pair, tmp_path):
    ours, theirs = (ds.class_encode_column("label").shuffle(seed=4).select(range(10)) for ds in pair)
    ours.save_to_disk(tmp_path / "cove")
    theirs.save_to_disk(str(tmp_path / "hf"))
    assert_same(hf.load_from_disk(str(tmp_path / "cove")), theirs)
    assert_same(cd.load_from_disk(tmp_path / "hf"), theirs)
    dd = cd.DatasetDict({"train": ours, "test": ours.select([1, 2])})
    dd.save_to_disk(tmp_path / "cove-dict")
    back = hf.load_from_disk(str(tmp_path / "cove-dict"))
    assert list(back) == ["train", "test"]
    assert_same(ours.select([1, 2]), back["test"])


# --- streaming -----------------------------------------------------------------------------------


def _jsonl(tmp_path, n=2500):
    path = tmp_path / "stream.jsonl"
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({"i": i, "w": random.Random(i).choice(string.ascii_lowercase)}) + "\n")
    return str(path)


@pytest.mark.parametrize(("seed", "buffer_size"), [(0, 100), (42, 1000), (7, 33)])
def test_streaming_shuffle_same_order(tmp_path, seed, buffer_size):
    path = _jsonl(tmp_path)
    ours = cd.load_dataset("json", data_files=path, split="train", streaming=True)
    theirs = hf.load_dataset("json", data_files=path, split="train", streaming=True)
    a = [r["i"] for r in ours.shuffle(seed=seed, buffer_size=buffer_size)]
    b = [r["i"] for r in theirs.shuffle(seed=seed, buffer_size=buffer_size)]
    assert a == b
    assert sorted(a) == list(range(2500))


def test_streaming_ops_match(tmp_path):
    path = _jsonl(tmp_path, 300)
    ours = cd.load_dataset("json", data_files=path, split="train", streaming=True)
    theirs = hf.load_dataset("json", data_files=path, split="train", streaming=True)

    def pipeline(ds):
        ds = ds.filter(lambda r: r["w"] not in "aeiou")
        ds = ds.map(lambda b: {"w2": [w * 2 for w in b["w"]]}, batched=True, batch_size=16)
        ds = ds.map(lambda r, idx: {"pos": idx}, with_indices=True, remove_columns=["w"])
        return list(ds.skip(5).take(40))

    assert pipeline(ours) == pipeline(theirs)


def test_hub_folder_loads_the_same_in_both(pair, tmp_path):
    ours, _ = pair
    ours = ours.class_encode_column("label")
    folder = cd.DatasetDict({"train": ours, "test": ours.select(range(5))}).write_hub_folder(
        tmp_path / "repo"
    )
    theirs = hf.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))
    back = cd.load_dataset(str(folder))
    assert list(theirs) == list(back) == ["train", "test"]
    for split in theirs:
        assert_same(back[split], theirs[split])
    assert_same(
        back["train"],
        hf.Dataset.from_dict(ours.to_dict(), features=hf.Features.from_dict(ours.features.to_dict())),
    )


def test_load_options_match(tmp_path):
    (tmp_path / "t.tsv").write_text("a\tb\n1\tx\n2\ty\n")
    (tmp_path / "nested.json").write_text(
        json.dumps({"version": 1, "data": [{"q": "a", "n": 1}, {"q": "b", "n": 2}]})
    )
    (tmp_path / "lines.txt").write_text("one\ntwo\n\nfour")
    cache = str(tmp_path / "hf-cache")
    cases = [
        ("csv", {"data_files": str(tmp_path / "t.tsv"), "sep": "\t"}),
        ("json", {"data_files": str(tmp_path / "nested.json"), "field": "data"}),
        ("text", {"data_files": str(tmp_path / "lines.txt"), "keep_linebreaks": True}),
        (
            "csv",
            {
                "data_files": str(tmp_path / "t.tsv"),
                "sep": "\t",
                "features": {"a": ("Value", "int32"), "b": ("ClassLabel", ["y", "x"])},
            },
        ),
    ]
    for builder, kwargs in cases:
        ours_kwargs, theirs_kwargs = dict(kwargs), dict(kwargs)
        if "features" in kwargs:
            spec = kwargs["features"]
            ours_kwargs["features"] = cd.Features(
                {"a": cd.Value(spec["a"][1]), "b": cd.ClassLabel(names=spec["b"][1])}
            )
            theirs_kwargs["features"] = hf.Features(
                {"a": hf.Value(spec["a"][1]), "b": hf.ClassLabel(names=spec["b"][1])}
            )
        ours = cd.load_dataset(builder, split="train", **ours_kwargs)
        theirs = hf.load_dataset(builder, split="train", cache_dir=cache, **theirs_kwargs)
        assert_same(ours, theirs)


def test_from_dict_encodes_class_label_strings():
    data = {"l": ["b", "a", "b"], "x": [1, 2, 3]}
    ours = cd.Dataset.from_dict(
        data, features=cd.Features({"l": cd.ClassLabel(names=["a", "b"]), "x": cd.Value("int16")})
    )
    theirs = hf.Dataset.from_dict(
        data, features=hf.Features({"l": hf.ClassLabel(names=["a", "b"]), "x": hf.Value("int16")})
    )
    assert_same(ours, theirs)


def test_ops_on_index_mapped_datasets_match(pair):
    def run(lib_ds, lib):
        ds = lib_ds.shuffle(seed=5).filter(lambda r: r["score"] > 0.2)
        mapped = ds.map(
            lambda b, idx: {"pos": idx, "len": [len(t) for t in b["text"]]}, batched=True, with_indices=True
        )
        split = ds.class_encode_column("label").train_test_split(
            test_size=0.3, seed=9, stratify_by_column="label"
        )
        shards = [ds.shard(3, i) for i in range(3)] + [ds.shard(4, 1, contiguous=False)]
        both = lib.concatenate_datasets([ds.select([3, 1]), lib_ds.select([0])])
        return [mapped, split["train"], split["test"], ds.flatten_indices(), both, *shards]

    for ours, theirs in zip(run(pair[0], cd), run(pair[1], hf)):
        assert_same(ours, theirs)


# --- keywords: Cove accepts only datasets' names, and a misspelled one raises -----------------------------

import inspect  # noqa: E402

_CLASSES = [
    (cd.Dataset, hf.Dataset),
    (cd.DatasetDict, hf.DatasetDict),
    (cd.IterableDataset, hf.IterableDataset),
    (cd.IterableDatasetDict, hf.IterableDatasetDict),
]
_FUNCTIONS = ["concatenate_datasets", "load_from_disk", "load_dataset"]
# Cove's own additions, absent from datasets
_COVE_ONLY = {"write_hub_folder", "from_files"}


def _public_methods():
    for ours, theirs in _CLASSES:
        for name in sorted(vars(ours)):
            attr = inspect.getattr_static(ours, name)
            if name.startswith("_") or isinstance(attr, property) or name in _COVE_ONLY:
                continue
            if callable(getattr(ours, name)) and name in vars(ours):
                yield pytest.param(getattr(ours, name), getattr(theirs, name), id=f"{ours.__name__}.{name}")
    for name in _FUNCTIONS:
        yield pytest.param(getattr(cd, name), getattr(hf, name), id=name)


def _keywords(fn):
    params = inspect.signature(fn).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    return (
        [n for n in named if n not in ("self", "cls")],
        [n for n in positional if n not in ("self", "cls")],
        any(p.kind == p.VAR_KEYWORD for p in params),
    )


@pytest.mark.parametrize(("ours", "theirs"), list(_public_methods()))
def test_cove_takes_only_keywords_datasets_takes(ours, theirs):
    """Code written against Cove runs on datasets: every keyword Cove accepts has datasets' name, positional
    parameters come in datasets' order, and Cove swallows arbitrary keywords only where datasets does."""
    our_names, our_positional, our_var = _keywords(ours)
    their_names, their_positional, their_var = _keywords(theirs)
    assert set(our_names) <= set(their_names), sorted(set(our_names) - set(their_names))
    assert our_positional == their_positional[: len(our_positional)]
    assert their_var or not our_var


def _splits(ds):
    return ds.train_test_split(test_size=2, shuffle=False)


def _load_file(lib, ds, saved, builder, **kw):
    path = f"{saved}.{builder}"
    {
        "json": ds.to_json,
        "parquet": ds.to_parquet,
        "text": lambda p: ds.select_columns("text").to_csv(p, header=False),
    }[builder](path)
    return lib.load_dataset(builder, data_files=path, split="train", cache_dir=saved + "-cache", **kw)


# name, how to call it (lib is cove.data or datasets, saved a folder holding ds), the misspelled keyword
_MISSPELLED = [
    (
        "load_dataset json",
        lambda lib, ds, saved, **kw: _load_file(lib, ds, saved, "json", **kw),
        {"feild": "x"},
    ),
    (
        "load_dataset text",
        lambda lib, ds, saved, **kw: _load_file(lib, ds, saved, "text", **kw),
        {"keep_linebreak": True},
    ),
    (
        "load_dataset parquet",
        lambda lib, ds, saved, **kw: _load_file(lib, ds, saved, "parquet", **kw),
        {"column": ["a"]},
    ),
    ("shuffle", lambda lib, ds, saved, **kw: ds.shuffle(**kw), {"sed": 42}),
    ("map", lambda lib, ds, saved, **kw: ds.map(lambda r: r, **kw), {"batchd": True}),
    ("filter", lambda lib, ds, saved, **kw: ds.filter(lambda r: True, **kw), {"batchsize": 2}),
    ("select", lambda lib, ds, saved, **kw: ds.select([0], **kw), {"keep_in_memroy": True}),
    ("sort", lambda lib, ds, saved, **kw: ds.sort("label", **kw), {"revers": True}),
    ("shard", lambda lib, ds, saved, **kw: ds.shard(2, 0, **kw), {"contigous": False}),
    ("flatten_indices", lambda lib, ds, saved, **kw: ds.select([1, 0]).flatten_indices(**kw), {"numproc": 1}),
    ("train_test_split", lambda lib, ds, saved, **kw: ds.train_test_split(**kw), {"test_sise": 0.5}),
    (
        "rename_column",
        lambda lib, ds, saved, **kw: ds.rename_column("text", "t", **kw),
        {"new_fingerprnt": "x"},
    ),
    (
        "rename_columns",
        lambda lib, ds, saved, **kw: ds.rename_columns({"text": "t"}, **kw),
        {"inplace": True},
    ),
    ("remove_columns", lambda lib, ds, saved, **kw: ds.remove_columns("text", **kw), {"column": "text"}),
    ("select_columns", lambda lib, ds, saved, **kw: ds.select_columns("text", **kw), {"colums": "text"}),
    ("add_column", lambda lib, ds, saved, **kw: ds.add_column("n", [1, 2, 3, 4], **kw), {"features": None}),
    ("cast", lambda lib, ds, saved, **kw: ds.cast(ds.features, **kw), {"batch_sise": 10}),
    (
        "cast_column",
        lambda lib, ds, saved, **kw: ds.cast_column("label", ds.features["label"], **kw),
        {"features": None},
    ),
    ("save_to_disk", lambda lib, ds, saved, **kw: ds.save_to_disk(saved + "-again", **kw), {"num_shard": 1}),
    ("push_to_hub", lambda lib, ds, saved, **kw: ds.push_to_hub("me/x", **kw), {"privat": True}),
    ("from_dict", lambda lib, ds, saved, **kw: lib.Dataset.from_dict({"a": [1]}, **kw), {"feature": None}),
    ("from_list", lambda lib, ds, saved, **kw: lib.Dataset.from_list([{"a": 1}], **kw), {"feature": None}),
    ("set_transform", lambda lib, ds, saved, **kw: ds.set_transform(None, **kw), {"column": None}),
    (
        "Dataset.load_from_disk",
        lambda lib, ds, saved, **kw: lib.Dataset.load_from_disk(saved, **kw),
        {"keep_in_mem": True},
    ),
    ("load_from_disk", lambda lib, ds, saved, **kw: lib.load_from_disk(saved, **kw), {"keep_in_mem": True}),
    (
        "concatenate_datasets",
        lambda lib, ds, saved, **kw: lib.concatenate_datasets([ds, ds], **kw),
        {"axes": 0},
    ),
    ("DatasetDict.shuffle", lambda lib, ds, saved, **kw: _splits(ds).shuffle(**kw), {"sed": 42}),
    ("DatasetDict.map", lambda lib, ds, saved, **kw: _splits(ds).map(lambda r: r, **kw), {"batchd": True}),
    (
        "DatasetDict.filter",
        lambda lib, ds, saved, **kw: _splits(ds).filter(lambda r: True, **kw),
        {"batchd": True},
    ),
    ("DatasetDict.sort", lambda lib, ds, saved, **kw: _splits(ds).sort("label", **kw), {"revers": True}),
    (
        "DatasetDict.remove_columns",
        lambda lib, ds, saved, **kw: _splits(ds).remove_columns("text", **kw),
        {"new_fingerprint": "x"},
    ),
    ("DatasetDict.cast", lambda lib, ds, saved, **kw: _splits(ds).cast(ds.features, **kw), {"num_proc": 1}),
    (
        "DatasetDict.save_to_disk",
        lambda lib, ds, saved, **kw: _splits(ds).save_to_disk(saved + "-dict", **kw),
        {"num_shard": 1},
    ),
    (
        "IterableDataset.shuffle",
        lambda lib, ds, saved, **kw: ds.to_iterable_dataset().shuffle(**kw),
        {"sed": 42},
    ),
    (
        "IterableDataset.map",
        lambda lib, ds, saved, **kw: ds.to_iterable_dataset().map(lambda r: r, **kw),
        {"batchd": True},
    ),
]


@pytest.mark.parametrize(("call", "bad"), [pytest.param(c, b, id=n) for n, c, b in _MISSPELLED])
def test_a_misspelled_keyword_raises_type_error_in_both(call, bad, tmp_path):
    rows = {"text": ["a", "b", "c", "d"], "label": [1, 0, 1, 0]}
    for lib in (cd, hf):
        ds = lib.Dataset.from_dict(rows)
        saved = str(tmp_path / lib.__name__)
        ds.save_to_disk(saved)
        with pytest.raises(TypeError, match=next(iter(bad))):
            call(lib, ds, saved, **bad)


def test_keywords_cove_honours_give_datasets_results():
    rows = {"text": ["a", "b", "c", "d", "e"], "label": [1, 0, 1, 0, 1]}
    ours, theirs = cd.Dataset.from_dict(rows, split="train"), hf.Dataset.from_dict(rows, split="train")
    assert ours.split == str(theirs.split) == "train"
    tags = [1, 0, 1, 1, 0]  # datasets takes ids here (names raise)
    assert_same(
        ours.add_column("tag", tags, feature=cd.ClassLabel(names=["neg", "pos"])),
        theirs.add_column("tag", tags, feature=hf.ClassLabel(names=["neg", "pos"])),
    )
    our_dict = cd.DatasetDict({"train": ours, "test": ours.select([0, 1])})
    their_dict = hf.DatasetDict({"train": theirs, "test": theirs.select([0, 1])})
    for split in ("train", "test"):
        assert_same(
            our_dict.map(lambda r, i, s: {"k": f"{s}-{i}"}, with_indices=True, with_split=True)[split],
            their_dict.map(lambda r, i, s: {"k": f"{s}-{i}"}, with_indices=True, with_split=True)[split],
        )
        assert_same(our_dict.shuffle(42)[split], their_dict.shuffle(42)[split])  # seeds, positionally
    features = {"text": ("string",), "label": ["neg", "pos"]}

    def gen(n):
        for i in range(n):
            yield {"text": str(i), "label": ["neg", "pos"][i % 2]}

    our_stream = cd.IterableDataset.from_generator(
        gen,
        features=cd.Features(
            {"text": cd.Value(*features["text"]), "label": cd.ClassLabel(names=features["label"])}
        ),
        gen_kwargs={"n": 4},
    )
    their_stream = hf.IterableDataset.from_generator(
        gen,
        features=hf.Features(
            {"text": hf.Value(*features["text"]), "label": hf.ClassLabel(names=features["label"])}
        ),
        gen_kwargs={"n": 4},
    )
    assert list(our_stream) == list(their_stream)
