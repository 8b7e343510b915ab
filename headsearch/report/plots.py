"""The drawing step: ``pareto.png`` (matplotlib) and ``pareto.html`` (plotly, hover shows trial, params, objectives)."""

from __future__ import annotations

import json
from pathlib import Path

from headsearch.report.summary import RunSummary

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


def draw_png(summary: RunSummary, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5), dpi=120)
    for i, s in enumerate(summary.strategies):
        colour = COLOURS[i % len(COLOURS)]
        ax.scatter([p.flops_ratio for p in s.points], [p.accuracy for p in s.points], s=18, alpha=0.35, color=colour)
        ax.step([p.flops_ratio for p in s.front], [p.accuracy for p in s.front], where="post", color=colour,
                marker="o", markersize=4, label=f"{s.strategy} (HV {s.hypervolume:.3f})")
    ax.scatter([1.0], [summary.dense_accuracy], marker="*", s=180, color="black", zorder=5, label="dense")
    if summary.knee is not None:
        ax.scatter([summary.knee.flops_ratio], [summary.knee.accuracy], s=160, facecolors="none", edgecolors="red",
                   linewidths=2, zorder=6, label=f"knee ({summary.knee.strategy} #{summary.knee.trial})")
    ax.set_xlabel("FLOPs / dense FLOPs")
    ax.set_ylabel("accuracy (search split)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def draw_html(summary: RunSummary, path: Path, title: str) -> None:
    import plotly.graph_objects as go

    fig = go.Figure()
    for i, s in enumerate(summary.strategies):
        colour = COLOURS[i % len(COLOURS)]
        hover = [f"{p.strategy} trial {p.trial}<br>accuracy {p.accuracy:.4f}<br>FLOPs ratio {p.flops_ratio:.3f}"
                 f"<br>latency ratio {p.latency_ratio:.3f}<br>heads {p.objectives.get('heads_kept')}"
                 f"<br>params {json.dumps(p.params)}" for p in s.points]
        fig.add_trace(go.Scatter(x=[p.flops_ratio for p in s.points], y=[p.accuracy for p in s.points], mode="markers",
                                 name=s.strategy, marker={"color": colour, "opacity": 0.5}, hovertext=hover,
                                 hoverinfo="text"))
        fig.add_trace(go.Scatter(x=[p.flops_ratio for p in s.front], y=[p.accuracy for p in s.front], mode="lines",
                                 line={"shape": "hv", "color": colour}, name=f"{s.strategy} front", hoverinfo="skip"))
    fig.add_trace(go.Scatter(x=[1.0], y=[summary.dense_accuracy], mode="markers", name="dense",
                             marker={"symbol": "star", "size": 14, "color": "black"}))
    fig.update_layout(title=title, xaxis_title="FLOPs / dense FLOPs", yaxis_title="accuracy (search split)")
    fig.write_html(path, include_plotlyjs=True)


def knee_png(x, y, smoothed, knee_index: int, *, xlabel: str, ylabel: str, title: str, note: str = "") -> bytes:
    """A curve, its smoothing (Kneedle's polynomial fit) and the chosen knee, as PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    ax.plot(x, y, "o", markersize=3, color=COLOURS[0], label="measured")
    ax.plot(x, smoothed, "-", color=COLOURS[1], label="fit")
    ax.axvline(x[knee_index], color=COLOURS[3], linestyle="--", label=f"knee: {x[knee_index]:g}{note}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()
