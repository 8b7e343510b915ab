"""What strategies that train share: the training rows they use and the model they start from."""

from __future__ import annotations

from headsearch.data.text import TextDataset
from headsearch.errors import HeadsearchError
from headsearch.heads import HeadConfig
from headsearch.models.text_classifier import TextClassifier
from headsearch.strategies.base import StudyContext


def training_rows(context: StudyContext, rows: int) -> TextDataset:
    """``rows`` seeded rows of the study's training split (all of it when smaller)."""
    if context.train is None:
        raise HeadsearchError("This strategy trains and needs the study's training split; this context has none.")
    return context.train.sample(min(rows, len(context.train)), seed=context.seed + 3)


def start_model(context: StudyContext, warm_start: bool) -> TextClassifier:
    """A trainable copy of the dense model, or (no warm start) a fresh initialisation of its architecture."""
    copy = context.dense.prune(HeadConfig.dense(context.num_layers, context.num_heads))
    if not warm_start:
        copy.model = copy.model.reinitialized(context.seed)
    return copy
