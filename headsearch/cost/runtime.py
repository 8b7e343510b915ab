"""The runtime a latency is measured in: what the deployment runs, which is rarely eager PyTorch.

``eager``: the model's own forward. ``compile``: ``torch.compile(model)`` (Inductor, fixed shapes: it compiles
during the timer's warm-up calls, which are not timed). ``onnxruntime``: the model exported to ONNX as an
export writes ``model.onnx`` (dynamic batch and sequence), run by an ONNX Runtime session on the profile's
threads (CPU, or CUDA where the profile's device is a GPU and the CUDA provider is installed). A model's
runnable form is built once per (runtime, device, threads) and kept on the model, so that the dense model is
exported or compiled once per study, not once per candidate.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from headsearch.errors import ModelError

RUNTIMES = ("eager", "compile", "onnxruntime")
_CACHE = "_headsearch_runnables"  # on the model: built once per (runtime, device, threads)

Runnable = Callable[[torch.Tensor, torch.Tensor], Any]


def runtime_version(runtime: str) -> str:
    """The version of the library that runs ``runtime`` (torch for eager and compile)."""
    if runtime == "onnxruntime":
        import onnxruntime

        return f"onnxruntime {onnxruntime.__version__}"
    return f"torch {torch.__version__}"


def check_runtime(runtime: str) -> None:
    if runtime not in RUNTIMES:
        raise ModelError(f"The runtime must be one of {list(RUNTIMES)}. Got {runtime!r}.")


def runnable(model: torch.nn.Module, runtime: str, *, device: str = "cpu", threads: int = 1) -> Runnable:
    """``model`` as ``run(input_ids, attention_mask)`` in ``runtime``."""
    check_runtime(runtime)
    if runtime == "eager":
        return model
    if getattr(model, "router", None) is not None:  # RoutedClassifier: data-dependent control flow per input
        raise ModelError(f"Per-input head budgets (a routed model) run in eager PyTorch only; set hardware.runtime: "
                         f"eager to measure them (got {runtime}).")
    key = (runtime, device, threads)
    built = model.__dict__.get(_CACHE, {}).get(key)
    if built is None:
        built = _compiled(model) if runtime == "compile" else _onnx_session(model, device, threads)
        # looked up again: tracing for ONNX restores the module's attributes, a dict taken before included
        model.__dict__.setdefault(_CACHE, {})[key] = built
    return built


def _compiled(model: torch.nn.Module) -> Runnable:
    compiled = torch.compile(model, dynamic=False)
    return lambda ids, mask: compiled(ids, mask)


def _onnx_session(model: torch.nn.Module, device: str, threads: int) -> Runnable:
    from headsearch.models.onnx import write_onnx

    shape = model.shape
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, shape.vocab_size, (2, min(16, shape.max_positions)), generator=g)
    ids = ids.to(next(model.parameters()).device)
    with tempfile.TemporaryDirectory(prefix="headsearch-onnx-") as tmp:
        file = Path(tmp) / "model.onnx"
        write_onnx(model.eval(), ids, torch.ones_like(ids), file, max_positions=shape.max_positions)
        return onnx_session(file, device=device, threads=threads)  # the session holds the model: the file may go


def onnx_session(file: Path, *, device: str = "cpu", threads: int = 1) -> Runnable:
    """``file`` (``model.onnx``: ``input_ids``, ``attention_mask`` -> ``logits``) in an ONNX Runtime session on
    ``threads`` (CPU, or CUDA for a GPU device), as ``run(input_ids, attention_mask) -> logits``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3  # errors only
    providers = ["CUDAExecutionProvider"] if device.startswith("cuda") else ["CPUExecutionProvider"]
    if providers[0] not in ort.get_available_providers():
        raise ModelError(f"ONNX Runtime here has no {providers[0]} (it has {ort.get_available_providers()}); install "
                         "onnxruntime-gpu for a GPU, or measure on the CPU.")
    session = ort.InferenceSession(str(file), options, providers=providers)

    def run(input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        feed = {"input_ids": input_ids.cpu().numpy(), "attention_mask": attention_mask.cpu().numpy()}
        return torch.from_numpy(session.run(None, feed)[0])

    return run
