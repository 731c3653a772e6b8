"""Arrow-backed datasets: ``load_dataset``, ``Dataset``, ``DatasetDict``, ``IterableDataset`` and features.

Names and behaviour follow the `datasets` library, so code ports by changing the import.
"""

from cove.data.arrow_dataset import Dataset, concatenate_datasets
from cove.data.dataset_dict import DatasetDict, IterableDatasetDict
from cove.data.features import ClassLabel, Features, LargeList, List, Sequence, Value
from cove.data.iterable_dataset import IterableDataset
from cove.data.load import load_dataset, load_dataset_from_folder, load_from_disk

__all__ = [
    "ClassLabel",
    "Dataset",
    "DatasetDict",
    "Features",
    "IterableDataset",
    "IterableDatasetDict",
    "LargeList",
    "List",
    "Sequence",
    "Value",
    "concatenate_datasets",
    "load_dataset",
    "load_dataset_from_folder",
    "load_from_disk",
]
