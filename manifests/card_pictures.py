"""The pictures of a dataset card: histograms and a bar chart as PNG bytes (pure: no files).

In: values per series (split name -> floats), or counts per label. Out: PNG bytes drawn on
matplotlib's Agg canvas (no pyplot state). Axes are labelled with their unit (seconds, LUFS,
cuts per minute, clips), counts are whole numbers, and values that are all (nearly) equal, like
60 s clips, are drawn as one bar over a readable range instead of an offset axis
("+5.999e1" over 6 ms).
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

HISTOGRAM_BINS = 30
MIN_HALF_RANGE = 0.5  # the narrowest x range drawn is +- this (in the values' unit) around their centre
RELATIVE_HALF_RANGE = 0.02  # ... or +- 2 % of the centre, whichever is wider (60 s -> 58.8 to 61.2 s)

# one histogram panel: (title, x label, {series label: values}), optionally + y label ("clips" if not)
Panel = tuple[str, str, dict[str, list[float]]] | tuple[str, str, dict[str, list[float]], str]


def histogram_range(values: list[float]) -> tuple[float, float] | None:
    """The x range to draw `values` over: None (matplotlib's own) when they spread over a
    readable range, else a range centred on them, `MIN_HALF_RANGE` or `RELATIVE_HALF_RANGE`
    of the centre wide on each side (so 60.000 and 60.006 s make one bar at 60 s)."""
    finite = [value for value in values if math.isfinite(value)]
    if not finite:
        return None
    low, high = min(finite), max(finite)
    centre = (low + high) / 2
    half = max(MIN_HALF_RANGE, abs(centre) * RELATIVE_HALF_RANGE)
    if high - low >= half:
        return None
    return centre - half, centre + half


def histogram_png(panels: list[Panel]) -> bytes:
    """PNG bytes of one histogram per panel, side by side; each panel's series stacked."""
    figure = Figure(figsize=(5.0 * len(panels), 3.5), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (title, xlabel, series, *rest) in enumerate(panels, start=1):
        axes = figure.add_subplot(1, len(panels), index)
        filled = {label: values for label, values in series.items() if values}
        if filled:
            span = histogram_range([value for values in filled.values() for value in values])
            bins = HISTOGRAM_BINS if span is None else HISTOGRAM_BINS + 1  # odd: the centre mid-bin, one bar
            axes.hist(list(filled.values()), bins=bins, range=span, stacked=True, label=list(filled))
            if span is not None:
                axes.set_xlim(*span)
            axes.legend()
        else:
            axes.text(0.5, 0.5, "no clips", ha="center", va="center", transform=axes.transAxes)
        axes.ticklabel_format(axis="x", style="plain", useOffset=False)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(title=title, xlabel=xlabel, ylabel=rest[0] if rest else "clips")
    return _png(figure)


def bar_png(title: str, counts: Mapping[str, int], xlabel: str = "clips") -> bytes:
    """PNG bytes of a horizontal bar chart, one bar per label (top to bottom in `counts`'
    order), each bar labelled with its count."""
    height = 1.2 + 0.45 * max(1, len(counts))
    figure = Figure(figsize=(6.0, height), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    if counts:
        labels = list(counts)
        colors = [_bar_color(label) for label in labels]
        bars = axes.barh(range(len(labels)), [counts[label] for label in labels], color=colors)
        axes.set_yticks(range(len(labels)), labels)
        axes.invert_yaxis()
        axes.bar_label(bars, padding=3)
        axes.set_xlim(0, max(1, max(counts.values())) * 1.15)
    else:
        axes.text(0.5, 0.5, "no clips", ha="center", va="center", transform=axes.transAxes)
        axes.set_yticks([])
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set(title=title, xlabel=xlabel)
    return _png(figure)


def _bar_color(label: str) -> str:
    """Green for accepted clips, red for rejected ones (all reasons), orange for one reason."""
    if label.startswith("accepted"):
        return "tab:green"
    return "tab:orange" if ":" in label else "tab:red"


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()
