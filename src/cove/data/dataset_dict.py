"""``DatasetDict``: named splits, each a ``Dataset``; most methods apply to every split."""

from __future__ import annotations

import functools
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.errors import DatasetError


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


def _per_split(splits: dict[str, Any], values: dict[str, Any] | None, name: str) -> dict[str, Any]:
    """A per-split keyword (cache_file_names={"train": ...}) as a value for every split (None if absent)."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(splits))
    if unknown:
        raise DatasetError(f"{name} names split(s) {unknown}; the splits are {sorted(splits)}.")
    return {split: values.get(split) for split in splits}


class _WithSplit(functools.partial):
    """function(row[, idx], split): the split goes after the call's own arguments (map(with_split=True))."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, *self.args, **kwargs)


class DatasetDict(dict):
    """A dict split name -> ``Dataset``."""

    def _each(self, method: str, *args: Any, **kwargs: Any) -> DatasetDict:
        return DatasetDict({k: getattr(v, method)(*args, **kwargs) for k, v in self.items()})

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str) and key not in self:
            raise DatasetError(f"Unknown split {key!r}; available splits: {sorted(self.keys())}.")
        return super().__getitem__(key)

    def __repr__(self) -> str:
        body = "\n".join(f"{k}: {v!r}" for k, v in self.items())
        return "DatasetDict({\n    " + _indent(body) + "\n})"

    @property
    def column_names(self) -> dict[str, list[str]]:
        return {k: v.column_names for k, v in self.items()}

    @property
    def num_rows(self) -> dict[str, int]:
        return {k: v.num_rows for k, v in self.items()}

    @property
    def num_columns(self) -> dict[str, int]:
        return {k: v.num_columns for k, v in self.items()}

    @property
    def shape(self) -> dict[str, tuple[int, int]]:
        return {k: v.shape for k, v in self.items()}

    @property
    def cache_files(self) -> dict[str, list[dict[str, str]]]:
        return {k: v.cache_files for k, v in self.items()}

    def map(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        with_rank: bool = False,
        with_split: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        drop_last_batch: bool = False,
        remove_columns: str | list[str] | None = None,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_names: dict[str, str | None] | None = None,
        writer_batch_size: int | None = 1000,
        features: Any = None,
        disable_nullable: bool = False,
        fn_kwargs: dict[str, Any] | None = None,
        num_proc: int | None = None,
        desc: str | None = None,
        try_original_type: bool | None = True,
        on_mixed_types: str | None = None,
    ) -> DatasetDict:
        """Dataset.map on every split; cache_file_names maps split -> file, with_split passes the split's
        name to function after the row (and index)."""
        names = _per_split(self, cache_file_names, "cache_file_names")
        return DatasetDict(
            {
                split: dataset.map(
                    _WithSplit(function, split) if with_split and function is not None else function,
                    with_indices=with_indices,
                    with_rank=with_rank,
                    input_columns=input_columns,
                    batched=batched,
                    batch_size=batch_size,
                    drop_last_batch=drop_last_batch,
                    remove_columns=remove_columns,
                    keep_in_memory=keep_in_memory,
                    load_from_cache_file=load_from_cache_file,
                    cache_file_name=names[split],
                    writer_batch_size=writer_batch_size,
                    features=features,
                    disable_nullable=disable_nullable,
                    fn_kwargs=fn_kwargs,
                    num_proc=num_proc,
                    desc=desc,
                    try_original_type=try_original_type,
                    on_mixed_types=on_mixed_types,
                )
                for split, dataset in self.items()
            }
        )

    def filter(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        with_rank: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        cache_file_names: dict[str, str | None] | None = None,
        writer_batch_size: int | None = 1000,
        fn_kwargs: dict[str, Any] | None = None,
        num_proc: int | None = None,
        desc: str | None = None,
    ) -> DatasetDict:
        names = _per_split(self, cache_file_names, "cache_file_names")
        return DatasetDict(
            {
                split: dataset.filter(
                    function,
                    with_indices=with_indices,
                    with_rank=with_rank,
                    input_columns=input_columns,
                    batched=batched,
                    batch_size=batch_size,
                    keep_in_memory=keep_in_memory,
                    load_from_cache_file=load_from_cache_file,
                    cache_file_name=names[split],
                    writer_batch_size=writer_batch_size,
                    fn_kwargs=fn_kwargs,
                    num_proc=num_proc,
                    desc=desc,
                )
                for split, dataset in self.items()
            }
        )

    def shuffle(
        self,
        seeds: int | dict[str, int | None] | None = None,
        seed: int | None = None,
        generators: dict[str, Any] | None = None,
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        indices_cache_file_names: dict[str, str | None] | None = None,
        writer_batch_size: int | None = 1000,
    ) -> DatasetDict:
        """Dataset.shuffle on every split: one seed for all (seed, or an int seeds) or one per split (index
        mappings in memory: the caching keywords change nothing)."""
        if seed is not None and seeds is not None:
            raise DatasetError("shuffle() got both seed and seeds: pass only one.")
        if seeds is None or isinstance(seeds, int):
            seeds = dict.fromkeys(self, seeds if seeds is not None else seed)
        per_seed = _per_split(self, seeds, "seeds")
        per_generator = _per_split(self, generators, "generators")
        return DatasetDict(
            {
                split: dataset.shuffle(
                    seed=per_seed[split],
                    generator=per_generator[split],
                    keep_in_memory=keep_in_memory,
                    load_from_cache_file=load_from_cache_file,
                    writer_batch_size=writer_batch_size,
                )
                for split, dataset in self.items()
            }
        )

    def sort(
        self,
        column_names: str | list[str],
        reverse: bool | list[bool] = False,
        null_placement: str = "at_end",
        keep_in_memory: bool = False,
        load_from_cache_file: bool | None = None,
        indices_cache_file_names: dict[str, str | None] | None = None,
        writer_batch_size: int | None = 1000,
    ) -> DatasetDict:
        """Dataset.sort on every split (index mappings in memory: the caching keywords change nothing)."""
        return self._each("sort", column_names, reverse=reverse, null_placement=null_placement)

    def select_columns(self, column_names: str | list[str]) -> DatasetDict:
        return self._each("select_columns", column_names)

    def rename_column(self, original_column_name: str, new_column_name: str) -> DatasetDict:
        return self._each("rename_column", original_column_name, new_column_name)

    def rename_columns(self, column_mapping: dict[str, str]) -> DatasetDict:
        return self._each("rename_columns", column_mapping)

    def remove_columns(self, column_names: str | list[str]) -> DatasetDict:
        return self._each("remove_columns", column_names)

    def cast(self, features: Any) -> DatasetDict:
        return self._each("cast", features)

    def cast_column(self, column: str, feature: Any) -> DatasetDict:
        return self._each("cast_column", column, feature)

    def class_encode_column(self, column: str, include_nulls: bool = False) -> DatasetDict:
        # Each split gets the label set of its own values, exactly as in `datasets`.
        return self._each("class_encode_column", column, include_nulls=include_nulls)

    def unique(self, column: str) -> dict[str, list[Any]]:
        return {k: v.unique(column) for k, v in self.items()}

    def set_format(
        self,
        type: str | None = None,
        columns: list[str] | None = None,
        output_all_columns: bool = False,
        **format_kwargs: Any,
    ) -> None:
        for v in self.values():
            v.set_format(type, columns, output_all_columns, **format_kwargs)

    def reset_format(self) -> None:
        for v in self.values():
            v.reset_format()

    def with_format(
        self,
        type: str | None = None,
        columns: list[str] | None = None,
        output_all_columns: bool = False,
        **format_kwargs: Any,
    ) -> DatasetDict:
        return self._each("with_format", type, columns, output_all_columns, **format_kwargs)

    def flatten_indices(
        self,
        keep_in_memory: bool = False,
        cache_file_names: dict[str, str | None] | None = None,
        writer_batch_size: int | None = 1000,
        features: Any = None,
        disable_nullable: bool = False,
        num_proc: int | None = None,
        new_fingerprint: str | None = None,
    ) -> DatasetDict:
        names = _per_split(self, cache_file_names, "cache_file_names")
        return DatasetDict(
            {
                split: dataset.flatten_indices(
                    keep_in_memory=keep_in_memory,
                    cache_file_name=names[split],
                    writer_batch_size=writer_batch_size,
                    features=features,
                    disable_nullable=disable_nullable,
                    num_proc=num_proc,
                    new_fingerprint=new_fingerprint,
                )
                for split, dataset in self.items()
            }
        )

    def save_to_disk(
        self,
        dataset_dict_path: str | os.PathLike[str],
        max_shard_size: int | str | None = None,
        num_shards: dict[str, int] | None = None,
        num_proc: int | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        """Each split with Dataset.save_to_disk; num_shards maps split -> number of shards."""
        from cove.data.arrow_dataset import _only

        _only("save_to_disk", "storage_options", storage_options, None)
        shards = _per_split(self, num_shards, "num_shards")
        path = Path(dataset_dict_path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "dataset_dict.json").write_text(json.dumps({"splits": list(self)}))
        for k, v in self.items():
            v.save_to_disk(path / k, max_shard_size=max_shard_size, num_shards=shards[k], num_proc=num_proc)

    @staticmethod
    def load_from_disk(
        dataset_dict_path: str | os.PathLike[str],
        keep_in_memory: bool | None = None,
        storage_options: dict[str, Any] | None = None,
    ) -> DatasetDict:
        from cove.data.arrow_dataset import Dataset, _only

        _only("load_from_disk", "storage_options", storage_options, None)

        path = Path(dataset_dict_path)
        meta = path / "dataset_dict.json"
        if not meta.exists():
            raise DatasetError(
                f"{str(path)!r} is not a DatasetDict saved with save_to_disk (no dataset_dict.json)."
            )
        splits = json.loads(meta.read_text())["splits"]
        for s in splits:
            if "/" in s or "\\" in s or s in ("", ".", ".."):
                raise DatasetError(f"Bad split name {s!r} in {str(meta)!r}.")
        return DatasetDict(
            {s: Dataset.load_from_disk(path / s, keep_in_memory=keep_in_memory) for s in splits}
        )

    # --- hub ----------------------------------------------------------------------------

    def write_hub_folder(
        self, folder: str | os.PathLike[str], config_name: str = "default", data_dir: str | None = None
    ) -> Path:
        """Parquet files per split plus a README.md whose ``configs:`` block lists them (the Hub layout);
        the files go to data_dir, by default ``data`` for the default config and the config's name else."""
        import yaml

        out = Path(folder)
        (out / "data").mkdir(parents=True, exist_ok=True)
        data_files = []
        splits_info = []
        for split, ds in self.items():
            prefix = data_dir or ("data" if config_name == "default" else f"{config_name}")
            if Path(prefix).is_absolute() or ".." in Path(prefix).parts:
                raise DatasetError(f"data_dir={prefix!r} must be a relative folder inside the repo.")
            (out / prefix).mkdir(parents=True, exist_ok=True)
            rel = f"{prefix}/{split}-00000-of-00001.parquet"
            ds.to_parquet(out / rel)
            data_files.append({"split": split, "path": f"{prefix}/{split}-*"})
            splits_info.append({"name": split, "num_examples": len(ds)})
        first = next(iter(self.values()))
        header = {
            "dataset_info": {
                "config_name": config_name,
                "features": _card_features(first.features),
                "splits": splits_info,
            },
            "configs": [{"config_name": config_name, "data_files": data_files}],
        }
        card = "---\n" + yaml.safe_dump(header, sort_keys=False) + "---\n"
        (out / "README.md").write_text(card, encoding="utf-8")
        return out

    def push_to_hub(
        self,
        repo_id: str,
        config_name: str = "default",
        set_default: bool | None = None,
        data_dir: str | None = None,
        commit_message: str | None = None,
        commit_description: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        revision: str | None = None,
        create_pr: bool | None = False,
        max_shard_size: int | str | None = None,
        num_shards: dict[str, int] | None = None,
        embed_external_files: bool = True,
        num_proc: int | None = None,
    ) -> Any:
        """Every split as one Parquet file plus the card, in one commit to a dataset repo (to revision, a
        branch, when given). Cove has no features that refer to external files, so embed_external_files
        changes nothing; the files are written in this process (num_proc changes nothing)."""
        import cove.hub as hub
        from cove.data.arrow_dataset import _only

        _only("push_to_hub", "set_default", set_default, None, config_name == "default")
        _only("push_to_hub", "create_pr", create_pr, False, None)
        _only("push_to_hub", "max_shard_size", max_shard_size, None)
        for split_shards in (num_shards or {}).values():
            _only("push_to_hub", "num_shards", split_shards, None, 1)
        _only("push_to_hub", "commit_description", commit_description, None, "")

        upload_folder = getattr(hub, "upload_folder", None)
        if upload_folder is None:
            raise DatasetError(
                "push_to_hub needs cove.hub.upload_folder, which this install does not have yet; "
                "use write_hub_folder() and upload the folder yourself."
            )
        create_repo = getattr(hub, "create_repo", None)
        if create_repo is not None:
            create_repo(repo_id, token=token, private=bool(private), exist_ok=True, repo_type="dataset")
        with tempfile.TemporaryDirectory(prefix="cove-push-") as tmp:
            folder = self.write_hub_folder(tmp, config_name=config_name, data_dir=data_dir)
            return upload_folder(
                repo_id,
                str(folder),
                token=token,
                repo_type="dataset",
                commit_message=commit_message or "Upload dataset",
                revision=revision,
            )


def _card_features(features: Any) -> list[dict[str, Any]]:
    """The Hub card's YAML list form of features, as `datasets` writes and reads it."""
    return [{"name": name, **_card_feature(feat)} for name, feat in features.items()]


def _card_feature(feat: Any) -> dict[str, Any]:
    from cove.data.features import ClassLabel, LargeList, List, Value

    if isinstance(feat, dict):
        return {"struct": _card_features(feat)}
    if isinstance(feat, Value):
        return {"dtype": feat.dtype}
    if isinstance(feat, ClassLabel):
        return {"dtype": {"class_label": {"names": {str(i): n for i, n in enumerate(feat.names or [])}}}}
    if isinstance(feat, (List, LargeList)):
        inner = _card_feature(feat.feature)
        out: dict[str, Any] = {"large_list" if isinstance(feat, LargeList) else "list": _card_inner(inner)}
        if isinstance(feat, List) and feat.length > 0:
            out["length"] = feat.length
        return out
    raise DatasetError(f"Cannot describe feature {feat!r} in a dataset card.")


def _card_inner(inner: dict[str, Any]) -> Any:
    if "dtype" in inner and isinstance(inner["dtype"], str):
        return inner["dtype"]
    if "struct" in inner:
        return inner["struct"]
    return inner


class IterableDatasetDict(dict):
    """A dict split name -> ``IterableDataset``."""

    def __repr__(self) -> str:
        body = "\n".join(f"{k}: {v!r}" for k, v in self.items())
        return "IterableDatasetDict({\n    " + _indent(body) + "\n})"

    def _each(self, method: str, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return IterableDatasetDict({k: getattr(v, method)(*args, **kwargs) for k, v in self.items()})

    def map(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        with_split: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        drop_last_batch: bool = False,
        remove_columns: str | list[str] | None = None,
        fn_kwargs: dict[str, Any] | None = None,
    ) -> IterableDatasetDict:
        return IterableDatasetDict(
            {
                split: dataset.map(
                    _WithSplit(function, split) if with_split and function is not None else function,
                    with_indices=with_indices,
                    input_columns=input_columns,
                    batched=batched,
                    batch_size=batch_size,
                    drop_last_batch=drop_last_batch,
                    remove_columns=remove_columns,
                    fn_kwargs=fn_kwargs,
                )
                for split, dataset in self.items()
            }
        )

    def filter(
        self,
        function: Callable[..., Any] | None = None,
        with_indices: bool = False,
        input_columns: str | list[str] | None = None,
        batched: bool = False,
        batch_size: int | None = 1000,
        fn_kwargs: dict[str, Any] | None = None,
    ) -> IterableDatasetDict:
        return self._each(
            "filter",
            function,
            with_indices=with_indices,
            input_columns=input_columns,
            batched=batched,
            batch_size=batch_size,
            fn_kwargs=fn_kwargs,
        )

    def shuffle(
        self,
        seed: int | None = None,
        generator: Any = None,
        buffer_size: int = 1000,
        max_buffer_input_shards: int = 10,
    ) -> IterableDatasetDict:
        return self._each(
            "shuffle",
            seed=seed,
            generator=generator,
            buffer_size=buffer_size,
            max_buffer_input_shards=max_buffer_input_shards,
        )

    def remove_columns(self, column_names: str | list[str]) -> IterableDatasetDict:
        return self._each("remove_columns", column_names)

    def rename_column(self, original_column_name: str, new_column_name: str) -> IterableDatasetDict:
        return self._each("rename_column", original_column_name, new_column_name)
