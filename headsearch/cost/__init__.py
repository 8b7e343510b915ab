"""Cost of a head configuration: analytic FLOPs, parameters and memory; measured latency and speedup."""

from headsearch.cost.flops import FlopBreakdown, activation_bytes, count_flops, count_params
from headsearch.cost.latency import HardwareProfile, Latency, Speedup, measure_latency, measure_speedup

__all__ = [
    "FlopBreakdown",
    "HardwareProfile",
    "Latency",
    "Speedup",
    "activation_bytes",
    "count_flops",
    "count_params",
    "measure_latency",
    "measure_speedup",
]
