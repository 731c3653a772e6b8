"""Column types: ``Value``, ``ClassLabel``, ``List`` (``Sequence``) and ``Features``, mapped to Arrow types.

Reprs and ``to_dict()`` follow the `datasets` library (5.x), so features print and serialise the same way and
``dataset_info.json`` files are interchangeable.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from cove.errors import DatasetError

# Arrow's names for a few types differ from the dtype strings users write.
_ARROW_TO_DTYPE = {"double": "float64", "float": "float32", "halffloat": "float16"}
_DTYPE_ALIASES = {"double": "float64", "float": "float32", "half": "float16", "halffloat": "float16"}


def _dtype_to_arrow(dtype: str) -> pa.DataType:
    try:
        return pa.type_for_alias(dtype)
    except ValueError:
        raise DatasetError(
            f"Unknown Value dtype {dtype!r}: use an Arrow type name such as 'int64', 'float32', 'string', 'bool'."
        ) from None


@dataclass
class Value:
    """A scalar column: ``Value('int64')``, ``Value('string')``, ``Value('float32')``, ..."""

    dtype: str
    id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.dtype = _DTYPE_ALIASES.get(self.dtype, self.dtype)
        self.pa_type = _dtype_to_arrow(self.dtype)

    def __repr__(self) -> str:
        return f"Value({self.dtype!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and other.dtype == self.dtype

    def __hash__(self) -> int:
        return hash(("Value", self.dtype))


@dataclass
class ClassLabel:
    """Integer class ids with names: stored as int64, shown and encoded through ``names``."""

    num_classes: int | None = None
    names: list[str] | None = None
    names_file: str | None = field(default=None, repr=False)
    id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.names_file is not None and self.names is None:
            with open(self.names_file, encoding="utf-8") as f:
                self.names = [line.strip() for line in f if line.strip()]
        if self.names is None:
            if self.num_classes is None:
                raise DatasetError("ClassLabel needs names=[...] or num_classes=N; got neither.")
            self.names = [str(i) for i in range(self.num_classes)]
        else:
            self.names = [str(n) for n in self.names]
            if self.num_classes is not None and self.num_classes != len(self.names):
                raise DatasetError(
                    f"ClassLabel num_classes={self.num_classes} but {len(self.names)} names were given: "
                    "pass one or make them agree."
                )
            self.num_classes = len(self.names)
        if len(set(self.names)) != len(self.names):
            raise DatasetError(f"ClassLabel names must be unique, got {self.names}.")
        self._str2int = {name: i for i, name in enumerate(self.names)}
        self.pa_type = pa.int64()

    def __repr__(self) -> str:
        return f"ClassLabel(names={self.names!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ClassLabel) and other.names == self.names

    def __hash__(self) -> int:
        return hash(("ClassLabel", tuple(self.names or ())))

    def str2int(self, values: Any) -> Any:
        if isinstance(values, str):
            return self._encode_one(values)
        return [self._encode_one(v) for v in values]

    def int2str(self, values: Any) -> Any:
        assert self.names is not None
        if isinstance(values, int):
            return self._decode_one(values)
        return [self._decode_one(int(v)) for v in values]

    def _encode_one(self, value: str) -> int:
        try:
            return self._str2int[value]
        except KeyError:
            if value.strip() in self._str2int:
                return self._str2int[value.strip()]
            raise DatasetError(
                f"Label {value!r} is not one of this ClassLabel's names {self.names}: fix the value or add the name."
            ) from None

    def _decode_one(self, value: int) -> str:
        assert self.names is not None
        if not 0 <= value < len(self.names):
            raise DatasetError(
                f"Class id {value} is out of range for a ClassLabel with {len(self.names)} classes."
            )
        return self.names[value]


@dataclass
class List:
    """A list column; ``length`` > 0 makes it fixed-size."""

    feature: Any
    length: int = -1
    id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.feature = _as_feature(self.feature)

    @property
    def pa_type(self) -> pa.DataType:
        inner = get_arrow_type(self.feature)
        return pa.list_(inner, self.length) if self.length > 0 else pa.list_(inner)

    def __repr__(self) -> str:
        extra = f", length={self.length}" if self.length > 0 else ""
        return f"List({_repr(self.feature)}{extra})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.feature == self.feature and other.length == self.length


@dataclass
class LargeList:
    """A list column with 64-bit offsets."""

    feature: Any
    id: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.feature = _as_feature(self.feature)

    @property
    def pa_type(self) -> pa.DataType:
        return pa.large_list(get_arrow_type(self.feature))

    def __repr__(self) -> str:
        return f"LargeList({_repr(self.feature)})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LargeList) and other.feature == self.feature


def Sequence(feature: Any, length: int = -1, id: str | None = None) -> Any:
    """``List`` of a feature; a dict of features becomes a dict of lists, as in `datasets`."""
    if isinstance(feature, dict):
        return {key: Sequence(value, length=length) for key, value in feature.items()}
    return List(feature, length=length, id=id)


FeatureType = Any  # Value | ClassLabel | List | LargeList | dict[str, FeatureType]


def _as_feature(obj: Any) -> FeatureType:
    if isinstance(obj, dict) and not isinstance(obj, Features):
        return {k: _as_feature(v) for k, v in obj.items()}
    if isinstance(obj, list) and len(obj) == 1:  # datasets' shorthand [Value('int64')]
        return List(obj[0])
    if isinstance(obj, (Value, ClassLabel, List, LargeList, Features)):
        return obj
    raise DatasetError(f"{obj!r} is not a feature: use Value, ClassLabel, List/Sequence or a dict of them.")


def _repr(feature: FeatureType) -> str:
    if isinstance(feature, dict):
        return "{" + ", ".join(f"{k!r}: {_repr(v)}" for k, v in feature.items()) + "}"
    return repr(feature)


def get_arrow_type(feature: FeatureType) -> pa.DataType:
    if isinstance(feature, dict):
        return pa.struct([pa.field(k, get_arrow_type(v)) for k, v in feature.items()])
    return feature.pa_type


def arrow_type_to_feature(pa_type: pa.DataType) -> FeatureType:
    if pa.types.is_struct(pa_type):
        return {f.name: arrow_type_to_feature(f.type) for f in pa_type}
    if pa.types.is_fixed_size_list(pa_type):
        return List(arrow_type_to_feature(pa_type.value_type), length=pa_type.list_size)
    if pa.types.is_list(pa_type):
        return List(arrow_type_to_feature(pa_type.value_type))
    if pa.types.is_large_list(pa_type):
        return LargeList(arrow_type_to_feature(pa_type.value_type))
    if pa.types.is_dictionary(pa_type):
        return arrow_type_to_feature(pa_type.value_type)
    name = str(pa_type)
    return Value(_ARROW_TO_DTYPE.get(name, name))


def feature_to_dict(feature: FeatureType) -> Any:
    if isinstance(feature, dict):
        return {k: feature_to_dict(v) for k, v in feature.items()}
    if isinstance(feature, Value):
        return {"dtype": feature.dtype, "_type": "Value"}
    if isinstance(feature, ClassLabel):
        return {"names": list(feature.names or []), "_type": "ClassLabel"}
    if isinstance(feature, List):
        out = {"feature": feature_to_dict(feature.feature)}
        if feature.length > 0:
            out["length"] = feature.length
        return {**out, "_type": "List"}
    if isinstance(feature, LargeList):
        return {"feature": feature_to_dict(feature.feature), "_type": "LargeList"}
    raise DatasetError(f"Cannot serialise feature {feature!r}.")


def feature_from_dict(obj: Any) -> FeatureType:
    if isinstance(obj, list):  # old datasets files: [feature] for a list
        return List(feature_from_dict(obj[0]))
    if not isinstance(obj, dict):
        raise DatasetError(f"Bad serialised feature {obj!r}: expected a dict with a '_type' key.")
    kind = obj.get("_type")
    if kind is None:
        return {k: feature_from_dict(v) for k, v in obj.items()}
    if kind == "Value":
        return Value(obj["dtype"])
    if kind == "ClassLabel":
        return ClassLabel(names=obj.get("names"), num_classes=obj.get("num_classes"))
    if kind in ("List", "Sequence"):
        inner = feature_from_dict(obj["feature"])
        if kind == "Sequence":
            return Sequence(inner, length=obj.get("length", -1))
        return List(inner, length=obj.get("length", -1))
    if kind == "LargeList":
        return LargeList(feature_from_dict(obj["feature"]))
    raise DatasetError(
        f"Unsupported feature type {kind!r}: Cove supports Value, ClassLabel, List, LargeList."
    )


class Features(dict):
    """An ordered mapping of column name -> feature."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for key, value in list(self.items()):
            super().__setitem__(key, _as_feature(value))

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, _as_feature(value))

    def __repr__(self) -> str:
        return _repr(dict(self))

    def copy(self) -> Features:
        return Features(super().copy())

    @property
    def arrow_schema(self) -> pa.Schema:
        meta = {"huggingface": json.dumps({"info": {"features": self.to_dict()}})}
        return pa.schema([pa.field(k, get_arrow_type(v)) for k, v in self.items()], metadata=meta)

    @property
    def type(self) -> pa.StructType:
        return pa.struct([pa.field(k, get_arrow_type(v)) for k, v in self.items()])

    def to_dict(self) -> dict[str, Any]:
        return {k: feature_to_dict(v) for k, v in self.items()}

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> Features:
        return cls({k: feature_from_dict(v) for k, v in obj.items()})

    @classmethod
    def from_arrow_schema(cls, schema: pa.Schema) -> Features:
        """Features stored in the schema metadata (by Cove or datasets), else inferred from the Arrow types."""
        stored = _features_from_metadata(schema)
        if (
            stored is not None
            and list(stored) == schema.names
            and all(get_arrow_type(stored[n]) == schema.field(n).type for n in schema.names)
        ):
            return stored
        return cls({f.name: arrow_type_to_feature(f.type) for f in schema})


def _features_from_metadata(schema: pa.Schema) -> Features | None:
    meta = schema.metadata or {}
    raw = meta.get(b"huggingface")
    if raw is None:
        return None
    try:
        info = json.loads(raw)
        return Features.from_dict(info["info"]["features"])
    except (ValueError, KeyError, TypeError, DatasetError):
        return None


def schema_with_features(schema_or_features: Features) -> pa.Schema:
    return schema_or_features.arrow_schema


# --- casting ------------------------------------------------------------------------------


def cast_array(array: pa.Array | pa.ChunkedArray, feature: FeatureType, column: str) -> pa.Array:
    """Cast one column to a feature; strings cast to a ClassLabel are encoded through its names."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks() if array.num_chunks != 1 else array.chunk(0)
    if isinstance(feature, ClassLabel) and (
        pa.types.is_string(array.type) or pa.types.is_large_string(array.type)
    ):
        assert feature.names is not None
        codes = pc.index_in(array, value_set=pa.array(feature.names, type=array.type))
        unknown = pc.and_(pc.is_null(codes), pc.is_valid(array))
        if pc.any(unknown).as_py():
            bad = array.filter(unknown)[0].as_py()
            raise DatasetError(
                f"Column {column!r}: label {bad!r} is not one of the ClassLabel names {feature.names}: "
                "add it to names or fix the data."
            )
        return codes.cast(pa.int64())
    target = get_arrow_type(feature)
    if isinstance(feature, ClassLabel) and pa.types.is_integer(array.type):
        assert feature.names is not None
        out = array.cast(pa.int64())
        valid = out.drop_null()
        if len(valid) and (pc.min(valid).as_py() < -1 or pc.max(valid).as_py() >= len(feature.names)):
            raise DatasetError(
                f"Column {column!r} holds class ids outside 0..{len(feature.names) - 1} for {feature!r}."
            )
        return out
    try:
        return array.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise DatasetError(
            f"Cannot cast column {column!r} from {array.type} to {feature!r}: {exc}. "
            "Pick a feature type the values fit, or transform the column with map() first."
        ) from None


def cast_table(table: pa.Table, features: Features) -> pa.Table:
    missing = [n for n in features if n not in table.column_names]
    extra = [n for n in table.column_names if n not in features]
    if missing or extra:
        raise DatasetError(
            f"Features do not match the columns: missing {missing}, unexpected {extra}; "
            f"columns are {table.column_names}."
        )
    arrays = [cast_array(table.column(name), feat, name) for name, feat in features.items()]
    return pa.Table.from_arrays(arrays, schema=features.arrow_schema)


def encode_rows_for_features(columns: dict[str, Iterable[Any]], features: Features) -> pa.Table:
    """Build a table from python columns with the given features (ClassLabel strings are encoded)."""
    arrays = []
    for name, feat in features.items():
        values = list(columns[name]) if name in columns else None
        if values is None:
            raise DatasetError(f"Column {name!r} of the features is missing from the data ({list(columns)}).")
        arrays.append(_py_to_arrow(values, feat, name))
    return pa.Table.from_arrays(arrays, schema=features.arrow_schema)


def _py_to_arrow(values: list[Any], feature: FeatureType, column: str) -> pa.Array:
    if isinstance(feature, ClassLabel) and any(isinstance(v, str) for v in values):
        values = [feature.str2int(v) if isinstance(v, str) else v for v in values]
    try:
        return pa.array(values, type=get_arrow_type(feature))
    except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        raise DatasetError(f"Column {column!r} does not fit {feature!r}: {exc}.") from None
