"""TextClassifier: a HeadedModel with its tokenizer and labels, saved and loaded as one folder.

The folder format is shared by training checkpoints, run folders and exports:
``headsearch_model.json`` (kept heads, tokenizer kind, labels), the transformers model's dense
``config.json``, ``model.safetensors`` and the tokenizer's files; it is rebuilt as its transformers class,
then cut to the kept heads (``headsearch.models.hf.folder``). Folders of headsearch 0.1.0's own encoder
(retired; their JSON has ``spec``) are refused in one line: retrain or re-run to rebuild them. A routed
model (per-input head budgets, ``headsearch.models.routing``) adds its router's settings to the JSON and
its weights as ``router.safetensors``. Weights are read with safetensors only: nothing is unpickled.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from headsearch.data.text import TextDataset
from headsearch.data.tokenizers import Tokenizer, load_tokenizer
from headsearch.errors import HeadsearchError, ModelError
from headsearch.heads import HeadConfig
from headsearch.models.headed import HeadedModel
from headsearch.models.hf.folder import load_model, save_model
from headsearch.models.hf.model import TransformersClassifier
from headsearch.models.routing import HeadRouter, RoutedClassifier, RouterSpec

MODEL_FILE = "headsearch_model.json"
ROUTER_WEIGHTS_FILE = "router.safetensors"
FORMAT_VERSION = 1


@dataclass
class TextClassifier:
    """What a user classifies texts with: the model, its tokenizer, label names and truncation length.

    ``router``: set for a routed model (per-input head budgets); ``runtime`` then computes only each
    input's chosen heads, and ``logits``/``predict`` go through it."""

    model: TransformersClassifier
    tokenizer: Tokenizer
    label_names: tuple[str, ...]
    max_length: int
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    router: HeadRouter | None = None
    _runtime: RoutedClassifier | None = field(default=None, init=False, repr=False, compare=False)

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tokenizer.encode(texts, self.max_length, pairs)

    def encode_rows(self, data: TextDataset, rows: Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows ``rows`` of ``data`` tokenised (as pairs when the data has them)."""
        return self.encode(*data.rows(rows))

    @property
    def runtime(self) -> HeadedModel | RoutedClassifier:
        """What inference runs: the model, or for a routed model the runtime that skips unchosen heads."""
        if self.router is None:
            return self.model
        if self._runtime is None or self._runtime.model is not self.model or self._runtime.router is not self.router:
            self._runtime = RoutedClassifier(self.model, self.router)
        return self._runtime

    @torch.inference_mode()
    def logits(self, texts: Sequence[str], *, pairs: Sequence[str] | None = None, batch_size: int = 64,
               gates: torch.Tensor | None = None) -> torch.Tensor:
        if gates is not None and self.router is not None:
            raise ModelError("A routed model chooses its own heads per input; it takes no gates.")
        model = self.runtime
        model.eval()
        device = next(model.parameters()).device
        out = []
        for start in range(0, len(texts), batch_size):
            ids, mask = self.encode(texts[start:start + batch_size],
                                    None if pairs is None else pairs[start:start + batch_size])
            g = gates[start:start + batch_size] if gates is not None and gates.dim() == 3 else gates
            g = None if g is None else g.to(device)
            out.append(model(ids.to(device), mask.to(device), gates=g).float().cpu())
        return torch.cat(out) if out else torch.empty(0, len(self.label_names))

    def predict(self, texts: Sequence[str], *, pairs: Sequence[str] | None = None, batch_size: int = 64) -> list[str]:
        logits = self.logits(texts, pairs=pairs, batch_size=batch_size)
        return [self.label_names[i] for i in logits.argmax(-1).tolist()]

    def prune(self, config: HeadConfig) -> TextClassifier:
        if self.router is not None:
            raise ModelError("A routed model keeps every head (its router picks them per input); it cannot be pruned.")
        return replace(self, model=self.model.prune(config), meta=dict(self.meta))

    # -- one folder ---------------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write into an existing, empty folder (callers wrap this in ``atomic_folder``)."""
        meta = {
            "format_version": FORMAT_VERSION,
            "head_config": self.model.head_config.to_dict(),
            "tokenizer": self.tokenizer.kind,
            "label_names": list(self.label_names),
            "max_length": self.max_length,
            "source": self.source,
            "meta": self.meta,
        }
        if self.router is not None:
            meta["router"] = self.router.spec.to_dict()
            save_file(_state(self.router), str(folder / ROUTER_WEIGHTS_FILE))
        meta["transformers"] = save_model(self.model, folder, standalone=self.router is None)
        (folder / MODEL_FILE).write_text(json.dumps(meta, indent=2) + "\n")
        self.tokenizer.save(folder)

    @classmethod
    def load(cls, folder: str | Path) -> TextClassifier:
        folder = Path(folder)
        if not (folder / MODEL_FILE).is_file():
            raise ModelError(f"{folder}: no {MODEL_FILE}; not a headsearch model folder.")
        try:
            meta = json.loads((folder / MODEL_FILE).read_text())
        except json.JSONDecodeError as exc:
            raise ModelError(f"{folder / MODEL_FILE}: not valid JSON ({exc}).") from exc
        if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
            found = meta.get("format_version") if isinstance(meta, dict) else None
            raise ModelError(f"{folder / MODEL_FILE}: format_version {found!r}, this headsearch reads {FORMAT_VERSION}.")
        if "spec" in meta and "transformers" not in meta:
            raise ModelError(f"{folder}: written by headsearch 0.1.0 for its own encoder, which this version no longer "
                             "runs; train the model again (or re-run the study) to rebuild it as a transformers model.")
        try:
            labels, max_length, kind = tuple(meta["label_names"]), int(meta["max_length"]), meta["tokenizer"]
            config = HeadConfig.from_dict(meta["head_config"])
            model = load_model(folder, meta["transformers"], config)
        except HeadsearchError as exc:
            raise ModelError(f"{folder / MODEL_FILE}: {exc}") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise ModelError(f"{folder / MODEL_FILE}: malformed ({exc!r}).") from exc
        router = None
        if "router" in meta:
            try:
                router = HeadRouter(RouterSpec(**meta["router"]))
            except (HeadsearchError, TypeError) as exc:
                raise ModelError(f"{folder / MODEL_FILE}: malformed router ({exc}).") from exc
            _load_weights(router, folder / ROUTER_WEIGHTS_FILE)
        return cls(model, load_tokenizer(folder, kind), labels, max_length, meta.get("source", ""), meta.get("meta", {}),
                   router)


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def _load_weights(module: torch.nn.Module, weights: Path) -> None:
    if not weights.is_file():
        raise ModelError(f"{weights.parent}: {weights.name} is missing.")
    try:
        state = load_file(str(weights))
    except Exception as exc:  # safetensors raises its own error types for truncated/corrupted files
        raise ModelError(f"{weights}: cannot read the weights ({exc}).") from exc
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{weights}: weights do not match {MODEL_FILE} ({first}).") from exc
    module.eval()
