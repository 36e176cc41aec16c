"""The model's report folder: metrics.json plus training-curve and confusion-matrix PNGs.

matplotlib is imported inside the functions so that importing this module stays cheap. Figures are
built with ``matplotlib.figure.Figure`` rather than pyplot: no global figure registry to leak, and
no interactive backend is ever touched, so it is safe on headless workers and inside threads.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

_LOSS_SERIES = (("train_loss", "train"), ("val_loss", "validation"))
_SCORE_SERIES = (("val_accuracy", "accuracy"), ("val_micro_f1", "micro F1"), ("val_macro_f1", "macro F1"))


def _series(history: list[dict], key: str) -> tuple[list, list]:
    """(epochs, values) for the epochs that recorded ``key``; epoch defaults to the 1-based index."""
    points = [(row.get("epoch", i + 1), row[key]) for i, row in enumerate(history) if row.get(key) is not None]
    return [p[0] for p in points], [float(p[1]) for p in points]


def plot_training_curves(history: list[dict], path, best_epoch: int | None = None) -> Path:
    """Two panels, loss (train and validation) and validation accuracy / macro-F1, as a PNG."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(10, 4), layout="constrained")
    panels = fig.subplots(1, 2, sharex=True)
    for ax, series, title in (
        (panels[0], _LOSS_SERIES, "Loss"),
        (panels[1], _SCORE_SERIES, "Validation scores"),
    ):
        plotted = False
        for key, name in series:
            epochs, values = _series(history, key)
            if values:
                # Markers keep a one-epoch history visible (a lone point draws no line).
                ax.plot(epochs, values, marker="o", markersize=4, label=name)
                plotted = True
        if plotted:
            if best_epoch is not None:
                ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best (epoch {best_epoch})")
            ax.legend(loc="best", fontsize="small")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(True, alpha=0.3)
    # Without min_n_ticks=1 a short run falls back to fractional epoch ticks.
    panels[0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    panels[0].set_ylabel("loss")
    panels[1].set_ylabel("score")
    fig.suptitle("Training curves")
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def _short(label: str, width: int = 18) -> str:
    return label if len(label) <= width else label[: width - 1] + "…"


def plot_confusion(confusion, label_names, path, normalize: bool = True) -> Path:
    """Heat map of the confusion matrix with counts in the cells, as a PNG.

    With ``normalize`` the colours are row-normalised (recall per true class) so that rare classes
    are as readable as common ones; the annotations are always the raw counts.
    """
    from matplotlib.figure import Figure

    counts = np.asarray(confusion, dtype=np.int64)
    k = counts.shape[0]
    labels = [_short(str(name)) for name in label_names]
    if normalize:
        rows = counts.sum(axis=1, keepdims=True)
        colours = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows != 0)
    else:
        colours = counts.astype(np.float64)

    # Grow the canvas with the class count and shrink the cell text so 20 classes stay legible.
    side = min(4.0 + 0.45 * k, 14.0)
    fontsize = 11 if k <= 6 else 9 if k <= 12 else 7
    fig = Figure(figsize=(side + 1.5, side), layout="constrained")
    ax = fig.subplots()
    vmax = 1.0 if normalize else max(float(colours.max()), 1.0)
    image = ax.imshow(colours, cmap="Blues", vmin=0.0, vmax=vmax)
    fig.colorbar(image, ax=ax, shrink=0.8, label="fraction of true class" if normalize else "count")
    for i in range(k):
        for j in range(k):
            dark = colours[i, j] > 0.6 * vmax
            ax.text(
                j, i, str(counts[i, j]), ha="center", va="center", fontsize=fontsize, color="white" if dark else "black"
            )
    ax.set_xticks(range(k), labels, fontsize=fontsize)
    ax.set_yticks(range(k), labels, fontsize=fontsize)
    if k > 4 or max(map(len, labels), default=0) > 8:
        ax.tick_params(axis="x", labelrotation=45)
        for tick in ax.get_xticklabels():
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("Confusion matrix" + (" (colour = row-normalised)" if normalize else ""))
    path = Path(path)
    fig.savefig(path, dpi=120)
    return path


def write_report(report_dir, metrics: dict, history: list[dict] | None, best_epoch: int | None = None) -> list[Path]:
    """Write metrics.json, training_curves.png (when there is a history) and, for single-label models,
    confusion_matrix.png (a multi-label model's per-label table is in metrics.json)."""
    report_dir = Path(report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = report_dir / "metrics.json"
    metrics_path.write_text(json.dumps(metrics, indent=2) + "\n")
    paths = [metrics_path]
    if history:
        paths.append(plot_training_curves(history, report_dir / "training_curves.png", best_epoch))
    if "confusion" in metrics:
        confusion_path = report_dir / "confusion_matrix.png"
        paths.append(plot_confusion(metrics["confusion"], metrics["labels"], confusion_path))
    return paths
