"""A model as one self-contained ONNX file: inputs ``input_ids`` and ``attention_mask`` (int64, dynamic batch
and sequence), output ``logits``. Exports write it; the ``onnxruntime`` latency runtime times it."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from headsearch.errors import ModelError


def write_onnx(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, file: Path, *, max_positions: int) -> None:
    """Trace ``model(ids, mask)`` with torch's dynamo exporter into ``file``; a failure is one ``ModelError``."""
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=max_positions)
    dynamic = {"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}}
    quiet = logging.getLogger("torch.onnx")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (ids, mask), str(file), dynamo=True, dynamic_shapes=dynamic,
                              input_names=["input_ids", "attention_mask"], output_names=["logits"],
                              verbose=False, optimize=True, external_data=False)  # one self-contained file
    except Exception as exc:  # the exporter raises many types; the user needs to know ONNX failed
        raise ModelError(f"ONNX export failed ({type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}).") from exc
    finally:
        quiet.setLevel(level)
