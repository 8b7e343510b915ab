"""Datasets and tokenizers."""

from headsearch.data.loaders import load_ag_news, load_hf_dataset, load_sst2, load_table
from headsearch.data.sources import DATASETS, load_split
from headsearch.data.synthetic import negation_task
from headsearch.data.text import TextDataset
from headsearch.data.tokenizers import Tokenizer, WordPieceTokenizer, WordTokenizer, load_tokenizer

__all__ = [
    "DATASETS",
    "load_split",
    "TextDataset",
    "Tokenizer",
    "WordPieceTokenizer",
    "WordTokenizer",
    "load_ag_news",
    "load_hf_dataset",
    "load_sst2",
    "load_table",
    "load_tokenizer",
    "negation_task",
]
