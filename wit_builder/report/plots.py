"""PNG plots of a run's figures (matplotlib, Agg backend)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from wit_builder.report.collect import FunnelStep  # noqa: E402

#: Bars shown in a count chart; the rest are summed into one "other" bar.
MAX_BARS = 20


def save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_funnel(steps: list[FunnelStep], path: Path) -> Path | None:
    """Plot the samples left after each pipeline step; steps with unknown counts are left out."""
    known = [step for step in steps if step.count is not None]
    if not known:
        return None
    figure, axes = plt.subplots(figsize=(7, 0.5 * len(known) + 1.2))
    labels = [step.label for step in known][::-1]
    counts = [step.count for step in known][::-1]
    bars = axes.barh(labels, counts, color="tab:blue")
    axes.bar_label(bars, labels=[f"{count:,}" for count in counts], padding=3)
    axes.set_xlabel("samples")
    axes.set_title("Samples left after each step")
    axes.margins(x=0.15)
    return save(figure, path)


def plot_counts(counts: Counter, path: Path, title: str, xlabel: str) -> Path | None:
    """Plot a horizontal bar per value, largest first, with values past MAX_BARS summed as "other"."""
    if not counts:
        return None
    ranked = counts.most_common()
    if len(ranked) > MAX_BARS:
        other = sum(count for _, count in ranked[MAX_BARS - 1:])
        ranked = ranked[: MAX_BARS - 1] + [("other", other)]
    labels = [str(value) for value, _ in ranked][::-1]
    values = [count for _, count in ranked][::-1]
    figure, axes = plt.subplots(figsize=(7, 0.35 * len(ranked) + 1.2))
    bars = axes.barh(labels, values, color="tab:orange")
    axes.bar_label(bars, labels=[f"{value:,}" for value in values], padding=3)
    axes.set_xlabel(xlabel)
    axes.set_title(title)
    axes.margins(x=0.15)
    return save(figure, path)


def plot_query_counts(series: list[tuple[str, list[int] | None]], cap: int | None, path: Path) -> Path | None:
    """Plot the sorted number of samples per query of each (label, counts) series, on log-log axes."""
    if not any(counts for _, counts in series):
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, counts in series:
        if counts:
            axes.plot(range(1, len(counts) + 1), counts, label=f"{label} ({len(counts):,} queries)", drawstyle="steps-post")
    if cap is not None:
        axes.axhline(cap, color="gray", linestyle="--", label=f"threshold t = {cap:,}")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("query rank")
    axes.set_ylabel("samples per query")
    axes.set_title("Samples per query, sorted")
    axes.grid(alpha=0.3, which="both")
    axes.legend()
    return save(figure, path)


def plot_caption_lengths(fetched: list[int], kept: list[int], path: Path) -> Path | None:
    """Plot histograms of caption length in words for fetched and for kept samples."""
    if not fetched and not kept:
        return None
    figure, axes = plt.subplots(figsize=(7, 4))
    longest = max(fetched + kept)
    bins = range(0, min(longest, 100) + 2)
    if fetched:
        axes.hist([min(value, 100) for value in fetched], bins=bins, alpha=0.6, label=f"fetched ok ({len(fetched):,})")
    if kept:
        axes.hist([min(value, 100) for value in kept], bins=bins, alpha=0.6, label=f"kept after filter ({len(kept):,})")
    axes.set_xlabel("caption length in words (100 means 100 or more)")
    axes.set_ylabel("samples")
    axes.set_title("Caption length")
    axes.legend()
    return save(figure, path)
