"""Datasets, loaders, splits and synthetic data."""

from recfuse.data.dataset import Dataset, Feature, FeatureTable, Interactions, Vocab
from recfuse.data.splits import (Split, check_split, cold_start_items, kcore, leave_one_out, make_split, predefined,
                                 temporal)
from recfuse.data.synthetic import make_synthetic

__all__ = [
    "Dataset", "Feature", "FeatureTable", "Interactions", "Vocab", "Split", "check_split", "cold_start_items", "kcore",
    "leave_one_out", "make_split", "predefined", "temporal", "make_synthetic", "load_dataset",
]


def load_dataset(name_or_path: str, **options):
    """Load a dataset by name (``ml-100k``, ``ml-1m``, ...) or from a path; see :mod:`recfuse.data.loaders`."""
    from recfuse.data.loaders import load_dataset as _load  # lazy: pandas and the loaders, on first use
    return _load(name_or_path, **options)
