"""The report folder: metrics.json round trip and valid, non-trivial PNGs."""

import json
import subprocess
import sys

import numpy as np
import pytest

from textclf.evaluation.metrics import metrics_from_confusion
from textclf.evaluation.report import plot_confusion, plot_training_curves, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5_000  # an empty canvas would be far smaller


@pytest.fixture
def metrics():
    return metrics_from_confusion(np.array([[40, 10], [5, 45]]), ["rotten", "fresh"])


HISTORY = [
    {
        "epoch": e,
        "train_loss": 1.0 / e,
        "val_loss": 1.2 / e,
        "val_accuracy": 0.5 + 0.1 * e,
        "val_macro_f1": 0.45 + 0.1 * e,
    }
    for e in range(1, 5)
]


def test_write_report_writes_everything(tmp_path, metrics):
    out = tmp_path / "model" / "report"
    paths = write_report(out, metrics, HISTORY, best_epoch=3)
    assert [p.name for p in paths] == ["metrics.json", "training_curves.png", "confusion_matrix.png"]
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert (out / "metrics.json").read_text().startswith('{\n  "accuracy"')
    for p in paths[1:]:
        _assert_png(p)


def test_write_report_without_history(tmp_path, metrics):
    paths = write_report(tmp_path, metrics, None)
    assert [p.name for p in paths] == ["metrics.json", "confusion_matrix.png"]


@pytest.mark.parametrize(
    "history",
    [
        [{"epoch": 1, "train_loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.6, "val_macro_f1": 0.55}],
        [{"epoch": 1, "train_loss": 0.9}, {"epoch": 2, "train_loss": 0.5, "val_loss": None}],
        [{"train_loss": 0.9, "val_accuracy": 0.5}, {"train_loss": 0.5}],  # no epoch key
        [{"epoch": 1}],  # nothing to plot at all
    ],
    ids=["one-epoch", "missing-keys", "no-epoch-key", "empty-rows"],
)
def test_training_curves_tolerate_sparse_history(tmp_path, history):
    _assert_png(plot_training_curves(history, tmp_path / "curves.png", best_epoch=1))


@pytest.mark.parametrize("k", [2, 20])
@pytest.mark.parametrize("normalize", [True, False])
def test_confusion_plot_any_size(tmp_path, k, normalize):
    rng = np.random.default_rng(k)
    cm = rng.integers(0, 500, (k, k))
    cm[0] = 0  # an empty true class must not divide by zero
    labels = [f"category number {i} with a long name" for i in range(k)]
    _assert_png(plot_confusion(cm, labels, tmp_path / "cm.png", normalize=normalize))


def test_import_does_not_load_matplotlib():
    code = "import sys, textclf.evaluation.report; print('matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
