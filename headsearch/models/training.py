"""Training and accuracy for TextClassifiers, and checkpoints that later runs reuse.

``train`` fine-tunes everything, or only the classifier with ``freeze_encoder=True``. ``train_or_load``
keys a checkpoint by a fingerprint of the data, the model recipe and the training settings: a later
run with the same three loads it instead of training again.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from headsearch._fs import atomic_folder
from headsearch.data.text import TextDataset
from headsearch.errors import ModelError
from headsearch.heads import HeadConfig
from headsearch.models.encoded import EncodedSplit
from headsearch.models.headed import GateFn
from headsearch.models.text_classifier import MODEL_FILE, TextClassifier


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    freeze_encoder: bool = False
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ModelError(f"TrainConfig needs epochs >= 1 and batch_size >= 1. Got {self.epochs}, {self.batch_size}.")
        if not self.learning_rate > 0:
            raise ModelError(f"The 'learning_rate' parameter of TrainConfig must be > 0. Got {self.learning_rate}.")
        if not 0 <= self.warmup_fraction < 1:
            raise ModelError(f"The 'warmup_fraction' parameter of TrainConfig must be in [0, 1). Got {self.warmup_fraction}.")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class TrainableGates(Protocol):
    """Head gates trained with the model (``headsearch.models.gates``, the BudgetFormer router): per batch, gates
    for the forward pass, then the cost penalty added to the batch's loss."""

    learning_rate: float

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...

    def draw(self, progress: float) -> torch.Tensor | GateFn:
        """Gates for one training batch: ``[layers, heads]``, or a GateFn computing them from each layer's
        input. ``progress``: the fraction of training done, for schedules."""
        ...

    def penalty(self) -> torch.Tensor:
        """The cost penalty of the batch just run."""
        ...


def train(clf: TextClassifier, data: TextDataset, config: TrainConfig = TrainConfig(), *,
          progress: bool = True, gates: TrainableGates | None = None,
          teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
          temperature: float = 2.0, on_epoch: Callable[[int], None] | None = None) -> list[float]:
    """Train in place with AdamW and linear warm-up/decay; returns the mean training loss per epoch.

    ``gates``: trained jointly (their own learning rate, no weight decay); each batch runs with the gates
    they draw and adds their penalty to the loss. ``teacher``: logits of a teacher for the same batch;
    the loss adds the distillation term ``T^2 KL(teacher/T || student/T)`` (Hinton et al. 2015).
    ``on_epoch(epochs_done)``: called after each epoch (it may evaluate the model; training mode is restored)."""
    if data.num_classes != len(clf.label_names):
        raise ModelError(f"The data has {data.num_classes} classes but the classifier {len(clf.label_names)}.")
    model = clf.model
    torch.manual_seed(config.seed)
    order_rng = random.Random(config.seed)
    for name, p in model.named_parameters():
        p.requires_grad_(not config.freeze_encoder or model.is_classifier_parameter(name))
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() > 1]
    no_decay = [p for p in params if p.dim() <= 1]
    groups = [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if gates is not None:
        groups.append({"params": list(gates.parameters()), "weight_decay": 0.0, "lr": gates.learning_rate})
        params = params + groups[-1]["params"]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total = steps_per_epoch * config.epochs
    warmup = max(1, int(total * config.warmup_fraction))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
    )
    device = next(model.parameters()).device
    labels = torch.tensor(data.labels, dtype=torch.long)
    epoch_losses = []
    bar = tqdm(total=total, desc="train", unit="batch", disable=not progress, leave=False)
    model.train()
    step = 0
    try:
        for epoch in range(config.epochs):
            order = list(range(len(data)))
            order_rng.shuffle(order)
            running = 0.0
            for start in range(0, len(order), config.batch_size):
                idx = order[start:start + config.batch_size]
                ids, mask = clf.encode_rows(data, idx)
                ids, mask = ids.to(device), mask.to(device)
                g = gates.draw(step / total) if gates is not None else None
                logits = model(ids, mask, gates=g)
                loss = F.cross_entropy(logits, labels[idx].to(device))
                if gates is not None:
                    loss = loss + gates.penalty()
                if teacher is not None:
                    with torch.no_grad():
                        target = F.log_softmax(teacher(ids, mask) / temperature, dim=-1)
                    student = F.log_softmax(logits / temperature, dim=-1)
                    loss = loss + temperature ** 2 * F.kl_div(student, target, log_target=True, reduction="batchmean")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                step += 1
                running += loss.item() * len(idx)
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}")
            epoch_losses.append(running / len(data))
            if on_epoch is not None:
                on_epoch(epoch + 1)
                model.train()
    finally:
        bar.close()
        model.eval()
        for p in model.parameters():
            p.requires_grad_(True)
    return epoch_losses


def recover(clf: TextClassifier, config: HeadConfig, data: TextDataset, train_config: TrainConfig, *,
            progress: bool = False, teacher: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
            on_epoch: Callable[[int, TextClassifier], None] | None = None) -> TextClassifier:
    """A structurally pruned copy of ``clf`` keeping ``config``, fine-tuned on ``data`` (recovery after
    pruning), with distillation from ``teacher`` when given; ``clf`` is left unchanged. ``on_epoch(epoch,
    pruned)`` after each epoch (a strategy reports the accuracy so far to the driver)."""
    pruned = clf.prune(config)
    losses = train(pruned, data, train_config, progress=progress, teacher=teacher,
                   on_epoch=None if on_epoch is None else lambda epoch: on_epoch(epoch, pruned))
    pruned.meta["recovery"] = {"data": data.name, "rows": len(data), "config": train_config.to_dict(),
                               "epoch_losses": losses}
    return pruned


def trained_learning_rate(clf: TextClassifier, default: float = 5e-5) -> float:
    """The learning rate ``clf`` was fine-tuned with (recorded by ``train_or_load``), else ``default``."""
    return float(clf.meta.get("training", {}).get("config", {}).get("learning_rate", default))


def accuracy(clf: TextClassifier, data: TextDataset, *, gates: torch.Tensor | None = None,
             batch_size: int = 64) -> float:
    """Fraction of ``data`` classified correctly (optionally with ``[layers, heads]`` gates applied), by what
    inference runs: for a routed model its runtime, each input with the heads its router chose."""
    if gates is not None and clf.router is not None:
        raise ModelError("A routed model chooses its own heads per input; it takes no gates.")
    return EncodedSplit(clf, data, batch_size=batch_size).accuracy(clf.runtime, gates)


def fingerprint(recipe: Mapping[str, Any], data: TextDataset, config: TrainConfig) -> str:
    blob = json.dumps({"recipe": recipe, "data": data.fingerprint(), "train": config.to_dict()}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def train_or_load(checkpoint: str | Path, build: Callable[[], TextClassifier], recipe: Mapping[str, Any],
                  data: TextDataset, config: TrainConfig = TrainConfig(), *, progress: bool = True) -> TextClassifier:
    """Load ``checkpoint`` if it was trained from the same recipe, data and settings; else build, train, save.

    ``recipe`` describes what ``build`` makes (model source and shape) so a changed model is retrained.
    """
    checkpoint = Path(checkpoint)
    key = fingerprint(recipe, data, config)
    if (checkpoint / MODEL_FILE).is_file():
        clf = TextClassifier.load(checkpoint)
        if clf.meta.get("training", {}).get("fingerprint") == key:
            return clf
    clf = build()
    losses = train(clf, data, config, progress=progress)
    clf.meta["training"] = {"fingerprint": key, "recipe": dict(recipe), "data": data.name, "rows": len(data),
                            "config": config.to_dict(), "epoch_losses": losses}
    with atomic_folder(checkpoint) as tmp:
        clf.save(tmp)
    return clf
