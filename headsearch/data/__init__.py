"""Datasets and tokenizers."""

from headsearch.data.files import Columns, read_file, split_by_fractions
from headsearch.data.sources import DATASETS, DataSource, load_split, preset
from headsearch.data.synthetic import negation_task
from headsearch.data.text import TextDataset
from headsearch.data.tokenizers import Tokenizer, WordPieceTokenizer, WordTokenizer, load_tokenizer

__all__ = [
    "DATASETS",
    "Columns",
    "DataSource",
    "TextDataset",
    "Tokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "load_split",
    "load_tokenizer",
    "negation_task",
    "preset",
    "read_file",
    "split_by_fractions",
]
