"""Datasets: the user's files, presets, synthetic tasks. No torch here (reading a study imports this package);
tokenizers, which make tensors, are imported from ``headsearch.data.tokenizers``."""

from headsearch.data.files import Columns, read_file, split_by_fractions
from headsearch.data.sources import DATASETS, DataSource, load_split, preset
from headsearch.data.synthetic import negation_task
from headsearch.data.text import TextDataset

__all__ = [
    "DATASETS",
    "Columns",
    "DataSource",
    "TextDataset",
    "load_split",
    "negation_task",
    "preset",
    "read_file",
    "split_by_fractions",
]
