"""An export checked as a deployment runs it: loaded by transformers alone and by ONNX Runtime, scored on a dev
split and timed against the dense model in each runtime (``headsearch serve-check``).

The pruned model is what the export folder holds, read the way a server reads it:
``AutoModelForSequenceClassification.from_pretrained(export, trust_remote_code=True)`` and its tokenizer (eager),
and its ``model.onnx`` in an ONNX Runtime session. The dense model is loaded the same way from its folder, and
exported to ONNX here for the comparison. The four are timed round-robin in this process on one batch of the
profile's shape (``cost.latency.interleaved``), so the speedups are ratios of medians taken side by side; the
FLOPs ideal is ``1 / FLOPs ratio`` of the kept heads (``cost.flops``).
"""

from __future__ import annotations

import functools
import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from headsearch.cost import HardwareProfile, count_flops
from headsearch.cost.latency import call_timer, interleaved, random_inputs
from headsearch.cost.runtime import onnx_session, runnable
from headsearch.data.text import TextDataset
from headsearch.data.tokenizers import TransformersTokenizer
from headsearch.errors import ExportError, ModelError
from headsearch.heads import HeadConfig
from headsearch.models.text_classifier import MODEL_FILE, TextClassifier


@dataclass(frozen=True)
class RuntimeCheck:
    """One runtime's figures: accuracy of the pruned export on the split, dense and pruned milliseconds per batch."""

    runtime: str
    accuracy: float
    dense_ms: float
    pruned_ms: float

    @property
    def speedup(self) -> float:
        return self.dense_ms / self.pruned_ms


@dataclass(frozen=True)
class ServeCheck:
    heads_kept: int
    heads_total: int
    flops_ratio: float
    dense_accuracy: float
    disagreements: int  # rows where ONNX Runtime's class differs from transformers'
    rows: int
    runtimes: tuple[RuntimeCheck, ...]
    profile: dict

    @property
    def ideal(self) -> float:
        return 1.0 / self.flops_ratio


def plain_model(folder: Path) -> Any:
    """``folder``'s model as transformers alone loads it (an export's generated class, or a stock one)."""
    from transformers import AutoModelForSequenceClassification

    try:
        return AutoModelForSequenceClassification.from_pretrained(str(folder), trust_remote_code=True, local_files_only=True,
                                                                  dtype=torch.float32).eval()
    except Exception as exc:  # OSError, ValueError, torch's and safetensors' own: the user needs the cause
        raise ModelError(f"{folder}: transformers cannot load the model ({type(exc).__name__}: "
                         f"{(str(exc).splitlines() or [''])[0]}).") from exc


def serve_check(export: Path, dense: TextClassifier, dense_folder: Path, dev: TextDataset, profile: HardwareProfile, *,
                repeats: int = 11, batch_size: int = 64) -> ServeCheck:
    """``export`` (with ``model.onnx``) against ``dense`` (headsearch's view of ``dense_folder``) on ``dev``."""
    onnx_file = export / "model.onnx"
    if not onnx_file.is_file():
        raise ExportError(f"{export}: no model.onnx; export with ONNX (without --no-onnx) to check it in ONNX Runtime.")
    max_length = int(json.loads((export / MODEL_FILE).read_text())["max_length"])
    kept = HeadConfig.load(export / "head_config.json")
    pruned, dense_hf = plain_model(export), plain_model(dense_folder)
    tokenizer = TransformersTokenizer.load(export).hf
    onnx_logits = onnx_session(onnx_file, threads=profile.threads)

    correct = {"eager": 0, "onnxruntime": 0, "dense": 0}
    disagreements = 0
    with torch.inference_mode():
        for start in range(0, len(dev), batch_size):
            texts, pairs = dev.rows(range(start, min(start + batch_size, len(dev))))
            labels = torch.tensor(dev.labels[start:start + len(texts)])
            enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding="longest", return_tensors="pt")
            accepted = {k: v for k, v in enc.items() if k in _parameters(pruned)}
            eager = pruned(**accepted).logits.argmax(-1)
            onnx = onnx_logits(enc["input_ids"].long(), enc["attention_mask"].long()).argmax(-1)
            reference = dense_hf(**{k: v for k, v in enc.items() if k in _parameters(dense_hf)}).logits.argmax(-1)
            correct["eager"] += int((eager == labels).sum())
            correct["onnxruntime"] += int((onnx == labels).sum())
            correct["dense"] += int((reference == labels).sum())
            disagreements += int((eager != onnx).sum())
    ids, mask = random_inputs(dense.model, profile)
    dense_onnx = runnable(dense.model, "onnxruntime", threads=profile.threads)
    calls = {("eager", "dense"): functools.partial(dense_hf, input_ids=ids, attention_mask=mask),
             ("eager", "pruned"): functools.partial(pruned, input_ids=ids, attention_mask=mask),
             ("onnxruntime", "dense"): functools.partial(dense_onnx, ids, mask),
             ("onnxruntime", "pruned"): functools.partial(onnx_logits, ids, mask)}
    ms = {k: statistics.median(v) for k, v in interleaved({k: call_timer(c, profile) for k, c in calls.items()},
                                                          repeats=repeats).items()}
    shape = dense.model.shape
    full = HeadConfig.dense(shape.num_layers, shape.num_heads)
    ratio = count_flops(shape, kept, profile.seq_len).total / count_flops(shape, full, profile.seq_len).total
    n = len(dev)
    return ServeCheck(
        heads_kept=kept.total_kept, heads_total=kept.total_heads, flops_ratio=ratio, dense_accuracy=correct["dense"] / n,
        disagreements=disagreements, rows=n, profile=profile.to_dict(),
        runtimes=tuple(RuntimeCheck(r, correct[r] / n, ms[(r, "dense")], ms[(r, "pruned")]) for r in ("eager", "onnxruntime")),
    )


@functools.cache
def _parameters_of(cls: type) -> frozenset[str]:
    import inspect

    return frozenset(inspect.signature(cls.forward).parameters)


def _parameters(model: Any) -> frozenset[str]:
    return _parameters_of(type(model))
