"""``DatasetDict``: named splits, each a ``Dataset``; most methods apply to every split."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cove.errors import DatasetError


def _indent(text: str) -> str:
    return text.replace("\n", "\n    ")


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

    def map(self, function: Callable[..., Any] | None = None, **kwargs: Any) -> DatasetDict:
        return self._each("map", function, **kwargs)

    def filter(self, function: Callable[..., Any] | None = None, **kwargs: Any) -> DatasetDict:
        return self._each("filter", function, **kwargs)

    def shuffle(
        self, seed: int | None = None, seeds: dict[str, int] | None = None, **kwargs: Any
    ) -> DatasetDict:
        per_split: dict[str, Any] = dict(seeds) if seeds is not None else dict.fromkeys(self, seed)
        return DatasetDict({k: v.shuffle(seed=per_split.get(k), **kwargs) for k, v in self.items()})

    def sort(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("sort", *args, **kwargs)

    def select_columns(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("select_columns", *args, **kwargs)

    def rename_column(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("rename_column", *args, **kwargs)

    def rename_columns(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("rename_columns", *args, **kwargs)

    def remove_columns(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("remove_columns", *args, **kwargs)

    def cast(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("cast", *args, **kwargs)

    def cast_column(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("cast_column", *args, **kwargs)

    def class_encode_column(self, column: str, include_nulls: bool = False) -> DatasetDict:
        # Each split gets the label set of its own values, exactly as in `datasets`.
        return self._each("class_encode_column", column, include_nulls=include_nulls)

    def unique(self, column: str) -> dict[str, list[Any]]:
        return {k: v.unique(column) for k, v in self.items()}

    def set_format(self, *args: Any, **kwargs: Any) -> None:
        for v in self.values():
            v.set_format(*args, **kwargs)

    def reset_format(self) -> None:
        for v in self.values():
            v.reset_format()

    def with_format(self, *args: Any, **kwargs: Any) -> DatasetDict:
        return self._each("with_format", *args, **kwargs)

    def flatten_indices(self, **kwargs: Any) -> DatasetDict:
        return self._each("flatten_indices", **kwargs)

    def save_to_disk(self, dataset_dict_path: str | os.PathLike[str], **kwargs: Any) -> None:
        path = Path(dataset_dict_path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "dataset_dict.json").write_text(json.dumps({"splits": list(self)}))
        for k, v in self.items():
            v.save_to_disk(path / k, **kwargs)

    @staticmethod
    def load_from_disk(
        dataset_dict_path: str | os.PathLike[str], keep_in_memory: bool = False, **_: Any
    ) -> DatasetDict:
        from cove.data.arrow_dataset import Dataset

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

    def write_hub_folder(self, folder: str | os.PathLike[str], config_name: str = "default") -> Path:
        """Parquet files per split plus a README.md whose ``configs:`` block lists them (the Hub layout)."""
        import yaml

        out = Path(folder)
        (out / "data").mkdir(parents=True, exist_ok=True)
        data_files = []
        splits_info = []
        for split, ds in self.items():
            prefix = "data" if config_name == "default" else f"{config_name}"
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
        token: str | None = None,
        private: bool = False,
        commit_message: str | None = None,
        **_: Any,
    ) -> Any:
        import cove.hub as hub

        upload_folder = getattr(hub, "upload_folder", None)
        if upload_folder is None:
            raise DatasetError(
                "push_to_hub needs cove.hub.upload_folder, which this install does not have yet; "
                "use write_hub_folder() and upload the folder yourself."
            )
        create_repo = getattr(hub, "create_repo", None)
        if create_repo is not None:
            create_repo(repo_id, token=token, private=private, exist_ok=True, repo_type="dataset")
        with tempfile.TemporaryDirectory(prefix="cove-push-") as tmp:
            folder = self.write_hub_folder(tmp, config_name=config_name)
            return upload_folder(
                repo_id,
                str(folder),
                token=token,
                repo_type="dataset",
                commit_message=commit_message or "Upload dataset",
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

    def map(self, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return self._each("map", *args, **kwargs)

    def filter(self, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return self._each("filter", *args, **kwargs)

    def shuffle(self, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return self._each("shuffle", *args, **kwargs)

    def remove_columns(self, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return self._each("remove_columns", *args, **kwargs)

    def rename_column(self, *args: Any, **kwargs: Any) -> IterableDatasetDict:
        return self._each("rename_column", *args, **kwargs)
