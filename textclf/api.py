"""The Python API: what the CLI does, callable from a script or a notebook with the same options.

    import textclf

    clf = textclf.load("models/rt")
    clf.predict(["a gorgeous, witty film"])              # ['fresh']
    clf.predict_top(["a gorgeous, witty film"], top_k=2)  # [[('fresh', 0.93), ('rotten', 0.07)]]
    textclf.train("data/rt/train", "models/rt", validation="data/rt/validation", arch="bow", workers=2)
    textclf.label("models/rt", "data/rt/test", "labeled/rt", probabilities=True)

Heavy imports (torch, Ray) happen inside the functions, so `import textclf` stays quick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from textclf.errors import DataError
from textclf.inference.selection import check_selection, top_labels


class Classifier:
    """A loaded bundle. Texts that cannot be labeled (None, empty or whitespace-only, as `textclf label`
    rules) get no label: None from `predict`, no labels from `predict_top`, NaN from `predict_proba`."""

    def __init__(self, model_dir: str, device: str | None = None, precision: str = "auto") -> None:
        from textclf.inference.predictor import Predictor

        self._predictor = Predictor(model_dir, device=device, precision=precision)

    @property
    def labels(self) -> list[str]:
        """Label names, in the order of `predict_proba`'s columns."""
        return list(self._predictor.labels)

    @property
    def multi_label(self) -> bool:
        """Whether a text may get any number of labels (one probability per label) rather than one."""
        return self._predictor.multi_label

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """[len(texts), len(labels)] float32 probabilities."""
        texts = _texts(texts)
        probs = np.full((len(texts), len(self.labels)), np.nan, dtype=np.float32)
        ok = np.array([error is None for error in unlabelable(texts)], dtype=bool)
        if ok.any():
            probs[ok] = self._predictor.predict_proba([t for t, good in zip(texts, ok) if good])
        return probs

    def predict(self, texts: Sequence[str]) -> list[str | None] | list[list[str]]:
        """Each text's most probable label (None for an empty text); for a multi-label model, the list of
        labels it chose (at or above their tuned thresholds)."""
        chosen = self.predict_top(texts)
        if self.multi_label:
            return [[name for name, _ in picks] for picks in chosen]
        return [picks[0][0] if picks else None for picks in chosen]

    def predict_top(
        self, texts: Sequence[str], top_k: int | None = None, threshold: float | None = None
    ) -> list[list[tuple[str, float]]]:
        """Each text's `top_k` most probable labels with probability >= `threshold`, as (label, probability),
        most probable first; possibly none. Defaults: 1 label, or for a multi-label model all labels at or
        above their tuned thresholds."""
        check_selection(top_k, threshold)
        return self.choose(self.predict_proba(texts), top_k, threshold)

    def choose(
        self, probs: np.ndarray, top_k: int | None = None, threshold: float | None = None
    ) -> list[list[tuple[str, float]]]:
        """`predict_top` for probabilities already computed by `predict_proba`."""
        ok = ~np.isnan(probs).any(axis=1)
        chosen = top_labels(np.nan_to_num(probs), top_k, threshold, self._predictor.thresholds)
        names = self.labels
        return [
            [(names[i], float(row[i])) for i in picks] if good else [] for picks, row, good in zip(chosen, probs, ok)
        ]


def load(model_dir: str, device: str | None = None, precision: str = "auto") -> Classifier:
    """Load a bundle for prediction; device "cuda" when available, else "cpu"."""
    return Classifier(model_dir, device=device, precision=precision)


def unlabelable(texts: Sequence[str | None]) -> list[str | None]:
    """Why each text cannot be labeled (null, empty, whitespace-only), or None: `textclf label`'s rule."""
    import pyarrow as pa

    from textclf.labeling.labeler import readable_texts

    try:
        column = pa.array(texts, pa.string())
    except (pa.ArrowTypeError, pa.ArrowInvalid):
        raise DataError("texts must be strings") from None
    return readable_texts(column)[1]


def _texts(texts: Sequence[str]) -> list:
    if isinstance(texts, str):
        raise DataError("pass a list of texts, not a single string")
    return list(texts)


def train(
    train: str,
    out: str,
    validation: str | None = None,
    *,
    config: str | None = None,
    resume: bool = False,
    address: str | None = None,
    storage: str | None = None,
    **options,
) -> dict:
    """`textclf train`: the same options by their flag names (`arch="cnn", workers=2, lr=1e-3, ...`),
    a YAML `config` under them. Returns the run's summary (best epoch, validation scores, bundle, warning)."""
    from textclf.training.config import load_train_config
    from textclf.training.driver import train as run_training

    settings = load_train_config(config, options)
    return run_training(settings, train, validation, out, resume=resume, address=address, storage=storage)


def label(
    model_dir: str, input: str, output: str, *, overwrite: bool = False, address: str | None = None, **options
) -> dict:
    """`textclf label`: the same options by their flag names (`probabilities=True, top_k=3, format="arrow",
    keep_columns=["text"], ...`). Returns the manifest."""
    from textclf.labeling.config import LabelConfig
    from textclf.labeling.pipeline import label as run_labeling

    if "stall_timeout" in options:  # the flag's name
        options["stall_timeout_s"] = options.pop("stall_timeout")
    known = {f.name for f in dataclasses.fields(LabelConfig)}
    unknown = sorted(set(options) - known)
    if unknown:
        raise DataError(f"unknown labeling option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    keep = options.get("keep_columns", ())
    options["keep_columns"] = tuple(c for c in keep.split(",") if c) if isinstance(keep, str) else tuple(keep)
    return run_labeling(model_dir, input, output, LabelConfig(**options), overwrite=overwrite, address=address)
