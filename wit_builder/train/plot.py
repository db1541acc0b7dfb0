"""Loss curve of the trained model and its shuffled-caption control."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def plot_losses(path: Path, trained: list[float], control: list[float], steps_per_epoch: int) -> Path:
    """Plot per-step losses and their per-epoch means for both models as a PNG."""
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, losses, color in (("trained", trained, "tab:blue"), ("shuffled-caption control", control, "tab:orange")):
        axes.plot(range(1, len(losses) + 1), losses, color=color, alpha=0.3, linewidth=0.8)
        if steps_per_epoch > 0 and len(losses) >= steps_per_epoch:
            epochs = len(losses) // steps_per_epoch
            means = [sum(losses[i * steps_per_epoch:(i + 1) * steps_per_epoch]) / steps_per_epoch for i in range(epochs)]
            ends = [(i + 1) * steps_per_epoch for i in range(epochs)]
            axes.plot(ends, means, color=color, marker="o", markersize=3, label=f"{label} (epoch mean)")
        else:
            axes.plot([], [], color=color, label=label)
    axes.set_xlabel("step")
    axes.set_ylabel("contrastive loss")
    axes.set_title("ClipLoss per step")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
