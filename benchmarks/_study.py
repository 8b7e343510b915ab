"""What the benchmarks share: a study's command line, and its dense model, context and test split."""

from __future__ import annotations

import argparse

import torch

from headsearch.data.text import TextDataset
from headsearch.strategies.base import StudyContext
from headsearch.study import build_context
from headsearch.study_config import StudyConfig, load_study


def study_parser(description: str, **kwargs) -> argparse.ArgumentParser:
    """``STUDY``, ``--out`` (the run folder whose cached dense model to reuse) and ``--threads``."""
    parser = argparse.ArgumentParser(description=description, **kwargs)
    parser.add_argument("study")
    parser.add_argument("--out", help="run folder whose cached model to use (default: the study's output)")
    parser.add_argument("--threads", type=int, default=2, help="training threads (latency is single-thread)")
    return parser


def open_study(args: argparse.Namespace) -> tuple[StudyConfig, StudyContext, TextDataset]:
    """The study's config, its context (the dense model trained once, or reused from the run folder) and test split."""
    torch.set_num_threads(args.threads)
    config = load_study(args.study, output=args.out)
    context, _ = build_context(config)
    test = config.data.source(config.seed).load("test")
    if test.label_names != context.dense.label_names:  # a user's classifier: its own label order
        test = test.aligned_to(context.dense.label_names)[0]
    return config, context, test
