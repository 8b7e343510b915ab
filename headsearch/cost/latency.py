"""Measured latency on a hardware profile, and speedup over dense measured interleaved in one process.

A profile names the runtime the deployment runs (``eager``, ``compile``, ``onnxruntime``: ``cost.runtime``);
every figure is timed in it.

Timing uses ``torch.utils.benchmark.Timer`` (it sets the thread count for the measurement and
synchronises CUDA). Each figure is the median of ``repeats`` measurements after ``warmup`` calls;
every measurement runs enough calls to last at least ``min_run_s``. Speedups time the dense and the
pruned model in alternating order, repeat after repeat, so drift of the machine hits both alike.
"""

from __future__ import annotations

import os
import platform
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch.utils import benchmark

from headsearch.cost.runtime import check_runtime, runnable, runtime_version
from headsearch.errors import ModelError
from headsearch.models.headed import HeadedModel


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass(frozen=True, kw_only=True)
class HardwareProfile:
    """Where and how a latency is measured; recorded with every figure."""

    device: str = "cpu"
    runtime: str = "eager"
    threads: int = 1
    batch_size: int = 1
    seq_len: int = 128
    cpu: str = ""
    gpu: str = ""
    torch_version: str = ""
    runtime_version: str = ""

    def __post_init__(self) -> None:
        check_runtime(self.runtime)
        for name in ("threads", "batch_size", "seq_len"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelError(f"The '{name}' parameter of HardwareProfile must be an int >= 1. Got {value!r}.")
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"HardwareProfile device {self.device!r} asked for, but CUDA is not available here.")
        # fill in what the machine says, so a stored profile tells where its figures came from
        object.__setattr__(self, "cpu", self.cpu or cpu_name())
        object.__setattr__(self, "torch_version", self.torch_version or torch.__version__)
        object.__setattr__(self, "runtime_version", self.runtime_version or runtime_version(self.runtime))
        if self.device.startswith("cuda") and not self.gpu:
            object.__setattr__(self, "gpu", torch.cuda.get_device_name(torch.device(self.device)))

    @property
    def cpu_count(self) -> int:
        return os.cpu_count() or 1

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Latency:
    median_ms: float
    iqr_ms: float
    samples_ms: tuple[float, ...]
    profile: HardwareProfile


@dataclass(frozen=True)
class Speedup:
    """``speedup = dense.median_ms / pruned.median_ms``; ``pair_ratios`` are the per-repeat ratios."""

    dense: Latency
    pruned: Latency
    speedup: float
    pair_ratios: tuple[float, ...]


def random_inputs(model: HeadedModel, profile: HardwareProfile) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch of random tokens (fixed seed) of the profile's batch size and sequence length."""
    shape = model.shape
    if profile.seq_len > shape.max_positions:
        raise ModelError(f"seq_len {profile.seq_len} exceeds the model's {shape.max_positions} positions.")
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(2, shape.vocab_size, (profile.batch_size, profile.seq_len), generator=g)
    return ids.to(profile.device), torch.ones_like(ids, device=profile.device)


Batches = list[tuple[torch.Tensor, torch.Tensor]]


def _timer(model: torch.nn.Module, profile: HardwareProfile, inputs: Batches | None) -> benchmark.Timer:
    """A timer of one call: a forward pass of every batch in ``inputs`` (default: one random batch)."""
    model.eval().to(profile.device)
    batches = [(i.to(profile.device), m.to(profile.device)) for i, m in inputs] if inputs else [random_inputs(model, profile)]

    run = runnable(model, profile.runtime, device=profile.device, threads=profile.threads)

    def call() -> None:
        for ids, mask in batches:
            run(ids, mask)

    return call_timer(call, profile)


def call_timer(call: Callable[[], object], profile: HardwareProfile) -> benchmark.Timer:
    """A timer of ``call()`` in inference mode on the profile's threads."""
    def timed() -> None:
        with torch.inference_mode():
            call()

    return benchmark.Timer(stmt="timed()", globals={"timed": timed}, num_threads=profile.threads)


def calls_per_measurement(timer: benchmark.Timer, warmup: int, min_run_s: float) -> int:
    """How many calls one measurement times so that it lasts at least ``min_run_s`` (after ``warmup`` calls)."""
    per_call = timer.timeit(max(1, warmup)).mean
    return max(1, int(min_run_s / max(per_call, 1e-9)) + 1) if per_call < min_run_s else 1


def _latency(samples_ms: list[float], profile: HardwareProfile, batches: int = 1) -> Latency:
    ms = [s / batches for s in samples_ms]
    q = statistics.quantiles(ms, n=4) if len(ms) > 1 else [ms[0]] * 3
    return Latency(statistics.median(ms), q[2] - q[0], tuple(ms), profile)


def measure_latency(model: torch.nn.Module, profile: HardwareProfile, *, repeats: int = 15, warmup: int = 3,
                    min_run_s: float = 0.05, inputs: Batches | None = None) -> Latency:
    """Median time of one forward pass of a batch on ``profile``. ``inputs``: real batches (a model whose
    cost depends on its input, such as a routed one), timed in turn; the figure is per batch. Default:
    one batch of random tokens of the profile's shape."""
    timer = _timer(model, profile, inputs)
    number = calls_per_measurement(timer, warmup, min_run_s)
    return _latency([1000.0 * timer.timeit(number).mean for _ in range(repeats)], profile, len(inputs or [None]))


def measure_speedup(dense: HeadedModel, pruned: torch.nn.Module, profile: HardwareProfile, *,
                    repeats: int = 15, warmup: int = 3, min_run_s: float = 0.05, inputs: Batches | None = None) -> Speedup:
    """Dense and pruned latency measured interleaved in this process, on the same ``inputs``
    (see ``measure_latency``); speedup is the ratio of medians."""
    timers = {"dense": _timer(dense, profile, inputs), "pruned": _timer(pruned, profile, inputs)}
    return speedup_of(interleaved(timers, repeats=repeats, warmup=warmup, min_run_s=min_run_s), profile,
                      len(inputs or [None]))


def speedup_of(samples_ms: dict[str, list[float]], profile: HardwareProfile, batches: int = 1) -> Speedup:
    """The ``Speedup`` of ``samples_ms["pruned"]`` over ``samples_ms["dense"]`` (per call, ``batches`` per call)."""
    d = _latency(samples_ms["dense"], profile, batches)
    p = _latency(samples_ms["pruned"], profile, batches)
    ratios = tuple(a / b for a, b in zip(samples_ms["dense"], samples_ms["pruned"], strict=True))
    return Speedup(d, p, d.median_ms / p.median_ms, ratios)


def interleaved(timers: dict[Any, benchmark.Timer], *, repeats: int, warmup: int = 3,
                min_run_s: float = 0.05) -> dict[Any, list[float]]:
    """Each timer's milliseconds per call, ``repeats`` times, timed round-robin with the order reversed every
    other repeat, so that drift of the machine hits all alike."""
    numbers = {key: calls_per_measurement(t, warmup, min_run_s) for key, t in timers.items()}
    samples: dict[Any, list[float]] = {key: [] for key in timers}
    for r in range(repeats):
        for key in timers if r % 2 == 0 else reversed(list(timers)):
            samples[key].append(1000.0 * timers[key].timeit(numbers[key]).mean)
    return samples
