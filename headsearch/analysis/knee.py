"""Knee of a curve with Kneedle (``kneed``), with a documented fallback when Kneedle finds none.

x is min-max normalised before Kneedle sees it: its polynomial smoothing fits ``np.polyfit(x, y, degree)``
and a high degree on raw x (up to hundreds of heads) is ill-conditioned (ALGORITHMS.md section 1).
Fallback when ``KneeLocator.knee`` is None (a straight line, a curve of the other shape, S too high):
the point where Kneedle's own difference curve peaks, that is the point farthest above the chord,
when that peak is positive; otherwise (no diminishing returns at all) the first point reaching the
largest y. ``Knee.fallback`` names which rule chose the point.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Knee:
    index: int  # position in the input sequences
    x: float
    y: float
    smoothed: tuple[float, ...]  # Kneedle's smoothed y (the polynomial fit when degree is given)
    fallback: str | None  # None: Kneedle's knee; "max-difference" or "first-max": the fallback used


def find_knee(x: Sequence[float], y: Sequence[float], *, curve: str = "concave", direction: str = "increasing",
              degree: int | None = None, sensitivity: float = 1.0, online: bool = False) -> Knee:
    """The knee of ``y(x)``; ``degree`` None uses Kneedle's ``interp1d`` (y unchanged), an int a polynomial fit."""
    from kneed import KneeLocator

    xs, ys = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if xs.ndim != 1 or xs.shape != ys.shape or len(xs) < 3:
        raise ValueError(f"A knee needs x and y of the same length >= 3. Got {len(xs)} and {len(ys)} points.")
    if np.any(np.diff(xs) <= 0):
        raise ValueError("A knee needs strictly increasing x.")
    xn = (xs - xs[0]) / (xs[-1] - xs[0])
    if np.ptp(ys) == 0:  # flat: every point is as good; Kneedle would divide by zero
        return Knee(0, float(xs[0]), float(ys[0]), tuple(ys.tolist()), "first-max")
    with warnings.catch_warnings():  # "No knee/elbow found" is reported through the fallback instead
        warnings.simplefilter("ignore")
        found = KneeLocator(xn, ys, S=sensitivity, curve=curve, direction=direction, online=online,
                            interp_method="interp1d" if degree is None else "polynomial",
                            polynomial_degree=degree or 7)
    smoothed = tuple(float(v) for v in found.Ds_y)
    if found.knee is not None:
        index = int(np.argmin(np.abs(xn - found.knee)))
        return Knee(index, float(xs[index]), float(ys[index]), smoothed, None)
    diff = np.asarray(found.y_difference)
    if diff.size and diff.max() > 0:
        j = int(diff.argmax())
        # kneed walks the curve mirrored for these two shapes: difference index j is point -(j + 1)
        mirrored = (direction, curve) in (("decreasing", "concave"), ("increasing", "convex"))
        index = len(xs) - 1 - j if mirrored else j
        return Knee(index, float(xs[index]), float(ys[index]), smoothed, "max-difference")
    best = ys.max() if direction == "increasing" else ys.min()
    index = int(np.flatnonzero(ys == best)[0])
    return Knee(index, float(xs[index]), float(ys[index]), smoothed, "first-max")


def knee_png(x, y, smoothed, knee_index: int, *, xlabel: str, ylabel: str, title: str, note: str = "") -> bytes:
    """A curve, its smoothing (Kneedle's polynomial fit) and the chosen knee, as PNG bytes (matplotlib's
    default colours: the report's palette)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=110)
    ax.plot(x, y, "o", markersize=3, color="C0", label="measured")
    ax.plot(x, smoothed, "-", color="C1", label="fit")
    ax.axvline(x[knee_index], color="C3", linestyle="--", label=f"knee: {x[knee_index]:g}{note}")
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
