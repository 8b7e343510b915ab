"""The drawing step: ``pareto.png`` (matplotlib) and ``pareto.html`` (plotly, hover shows trial, params, objectives)."""

from __future__ import annotations

import json
from pathlib import Path

from headsearch.pareto import non_dominated
from headsearch.report.summary import RunSummary

COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


TOP = 3  # strategies drawn in colour on the main panels (by hypervolume); every strategy has its own small panel


def draw_png(summary: RunSummary, path: Path, title: str) -> None:
    """Readable with many strategies: two main panels (accuracy against FLOPs ratio, and against the measured
    latency ratio) with every trial faded, the combined front in black and the ``TOP`` strategies' fronts in
    colour; below, one small panel per strategy (its trials and front over the combined front)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    strategies = [s for s in summary.strategies if s.points]
    top = sorted(strategies, key=lambda s: -s.hypervolume)[:TOP]
    colour = {s.strategy: COLOURS[i % len(COLOURS)] for i, s in enumerate(summary.strategies)}
    columns = 3
    rows = -(-len(strategies) // columns)
    fig = plt.figure(figsize=(12, 5.2 + 2.6 * rows), dpi=110)
    grid = fig.add_gridspec(1 + rows, columns * 2, height_ratios=[2.2] + [1] * rows, hspace=0.55, wspace=0.6, top=0.94)
    points = [p for s in strategies for p in s.points]
    low = min([p.accuracy for p in points] + [summary.dense_accuracy])
    left = min((p.flops_ratio for p in points), default=0.0) - 0.03  # a run whose every trial failed has none
    for column, (axis, label) in enumerate((("flops_ratio", "FLOPs / dense FLOPs"),
                                            ("latency_ratio", "measured latency / dense latency"))):
        ax = fig.add_subplot(grid[0, column * columns:(column + 1) * columns])
        ax.scatter([getattr(p, axis) for p in points], [p.accuracy for p in points], s=12, color="#b0b0b0",
                   alpha=0.5, label="every trial")
        front = non_dominated(points, cost=axis)  # the front against this axis' cost
        ax.step([getattr(p, axis) for p in front], [p.accuracy for p in front], where="post", color="black",
                linewidth=2, label=f"combined front (HV {summary.combined_hypervolume:.3f})")
        for s in top:
            mine = non_dominated(s.points, cost=axis)
            ax.step([getattr(p, axis) for p in mine], [p.accuracy for p in mine], where="post", color=colour[s.strategy],
                    marker="o", markersize=4, linewidth=1.2, label=f"{s.strategy} (HV {s.hypervolume:.3f})")
        ax.scatter([1.0], [summary.dense_accuracy], marker="*", s=200, color="black", zorder=5, label="dense")
        if summary.knee is not None:
            ax.scatter([getattr(summary.knee, axis)], [summary.knee.accuracy], s=170, facecolors="none",
                       edgecolors="red", linewidths=2, zorder=6, label=f"knee ({summary.knee.strategy} #{summary.knee.trial})")
        if axis == "latency_ratio":
            right = max([1.05, *(p.latency_ratio for p in points)])
            ax.axvspan(1.0, right * 1.02, color="#f4cccc", alpha=0.5, label="slower than dense")
        ax.set_xlabel(label)
        ax.set_ylabel("accuracy (search split)")
        ax.set_ylim(low - 0.02, 1.005 * max(1.0, summary.dense_accuracy))
        ax.grid(alpha=0.3)
        if column == 0:
            ax.legend(loc="lower right", fontsize=7)
    for i, s in enumerate(strategies):
        ax = fig.add_subplot(grid[1 + i // columns, (i % columns) * 2:(i % columns) * 2 + 2])
        front = summary.combined_front
        ax.step([p.flops_ratio for p in front], [p.accuracy for p in front], where="post", color="#c0c0c0", linewidth=1)
        ax.scatter([p.flops_ratio for p in s.points], [p.accuracy for p in s.points], s=8, color=colour[s.strategy],
                   alpha=0.45)
        ax.step([p.flops_ratio for p in s.front], [p.accuracy for p in s.front], where="post", color=colour[s.strategy],
                linewidth=1.5)
        ax.set_title(f"{s.strategy}: {len(s.points)} trials, HV {s.hypervolume:.3f}", fontsize=8)
        ax.set_xlim(left, 1.03)
        ax.set_ylim(low - 0.02, 1.005 * max(1.0, summary.dense_accuracy))
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def draw_html(summary: RunSummary, path: Path, title: str) -> None:
    """Interactive: accuracy against FLOPs ratio and against measured latency ratio side by side; a click on a
    strategy in the legend hides it in both; hovering a trial shows its parameters and objectives."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.06,
                        subplot_titles=("accuracy vs FLOPs", "accuracy vs measured latency"))
    for col, axis in ((1, "flops_ratio"), (2, "latency_ratio")):
        for i, s in enumerate(summary.strategies):
            colour = COLOURS[i % len(COLOURS)]
            hover = [f"{p.strategy} trial {p.trial}<br>accuracy {p.accuracy:.4f}<br>FLOPs ratio {p.flops_ratio:.3f}"
                     f"<br>latency ratio {p.latency_ratio:.3f}<br>heads {p.objectives.get('heads_kept')}"
                     f"<br>params {json.dumps(p.params)}" for p in s.points]
            fig.add_trace(go.Scatter(x=[getattr(p, axis) for p in s.points], y=[p.accuracy for p in s.points],
                                     mode="markers", name=s.strategy, legendgroup=s.strategy, showlegend=col == 1,
                                     marker={"color": colour, "opacity": 0.5}, hovertext=hover, hoverinfo="text"),
                          row=1, col=col)
            front = non_dominated(s.points, cost=axis)
            fig.add_trace(go.Scatter(x=[getattr(p, axis) for p in front], y=[p.accuracy for p in front], mode="lines",
                                     line={"shape": "hv", "color": colour}, legendgroup=s.strategy, showlegend=False,
                                     hoverinfo="skip"), row=1, col=col)
        fig.add_trace(go.Scatter(x=[1.0], y=[summary.dense_accuracy], mode="markers", name="dense", legendgroup="dense",
                                 showlegend=col == 1, marker={"symbol": "star", "size": 14, "color": "black"}),
                      row=1, col=col)
    fig.add_vrect(x0=1.0, x1=max([1.05, *(p.latency_ratio for s in summary.strategies for p in s.points)]),
                  fillcolor="#f4cccc", opacity=0.5, line_width=0, row=1, col=2)
    fig.update_xaxes(title_text="FLOPs / dense FLOPs", row=1, col=1)
    fig.update_xaxes(title_text="measured latency / dense latency (shaded: slower than dense)", row=1, col=2)
    fig.update_yaxes(title_text="accuracy (search split)", row=1, col=1)
    fig.update_layout(title=title)
    fig.write_html(path, include_plotlyjs=True)
