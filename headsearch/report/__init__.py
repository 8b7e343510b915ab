"""Reports of a run: Pareto plots (PNG and interactive HTML) and comparison tables."""

from __future__ import annotations

from pathlib import Path

from headsearch.report.plots import draw_html, draw_png
from headsearch.report.summary import RunSummary, TimeSpent, front_rows, markdown_table, summarise, time_table


def write_report(run_dir: Path, summary: RunSummary, title: str) -> list[Path]:
    """``pareto.png``, ``pareto.html`` and ``report.md`` in ``run_dir``."""
    png, html, md = run_dir / "pareto.png", run_dir / "pareto.html", run_dir / "report.md"
    draw_png(summary, png, title)
    draw_html(summary, html, title)
    rows = "\n".join("| " + " | ".join(r) + " |" for r in front_rows(summary.combined_front))
    knee = summary.knee
    md.write_text(
        f"# {title}\n\nDense accuracy {summary.dense_accuracy:.4f}. Combined hypervolume (accuracy x FLOPs) "
        f"{summary.combined_hypervolume:.4f}.\n\n{markdown_table(summary)}\n\n## Combined front\n\n"
        "| strategy | trial | accuracy | FLOPs ratio | latency ratio | heads | heads per layer |\n|---|---|---|---|---|---|---|\n"
        f"{rows}\n\nKnee: {'-' if knee is None else f'{knee.strategy} trial {knee.trial}'}"
        f"{'' if summary.knee_note is None else f' ({summary.knee_note})'}\n\n![pareto](pareto.png)\n"
        + (f"\n## Where the time went\n\n{time_table(summary)}\n" if summary.time_spent else "")
    )
    return [png, html, md]


__all__ = ["RunSummary", "TimeSpent", "front_rows", "markdown_table", "summarise", "time_table", "write_report"]
