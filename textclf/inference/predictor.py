"""Batched prediction with a loaded bundle: tokenize, encode, bucket, pad, run, restore order.

Shared by `evaluate`, `predict` and the labeling actors, so a text gets the same label and
confidence whichever path scores it.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
import torch

from textclf.bundle import Bundle, load_bundle
from textclf.runtime.precision import autocast, compute_dtype, quantizes
from textclf.text.batching import BatchingConfig, PaddingStats, bucket_batches, pad_batch
from textclf.text.encoding import text_encoder


def inference_batching(device_type: str = "cpu", batch_tokens: int | None = None) -> BatchingConfig:
    """Batches for scoring. CPU: batches that stay in cache (the BiLSTM ran faster at 4,096
    tokens than at 16,384); GPU: large batches keep the device busy. 16k-row windows sort well."""
    tokens = batch_tokens or (16_384 if device_type == "cuda" else 4096)
    return BatchingConfig(batch_tokens=tokens, max_rows=max(1, tokens // 32), window_rows=16_384)


INFERENCE_BATCHING = inference_batching()  # CPU


class Predictor:
    """Loads a bundle once; `predict_proba(texts)` returns label probabilities in input order (for a
    multi-label model, each label's own probability, so a row's need not sum to 1)."""

    def __init__(
        self, bundle: Bundle | str, device: str | None = None, batch_tokens: int | None = None, precision: str = "auto"
    ) -> None:
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.dtype = compute_dtype(precision, self.device)  # before loading: a bad value fails fast
        int8 = quantizes(precision, self.device)
        self.bundle = bundle if isinstance(bundle, Bundle) else load_bundle(bundle, self.device)
        model = self.bundle.model.to(self.device).eval()
        if int8:  # in place: a Bundle passed in is quantized too
            model.to_int8()
        if precision == "auto" and not model.bf16_pays:
            self.dtype = None
        if self.device.type == "cpu":
            batch_tokens = batch_tokens or model.cpu_batch_tokens
        self.batching = inference_batching(self.device.type, batch_tokens)
        self.padding = PaddingStats()

    @property
    def labels(self) -> list[str]:
        return self.bundle.labels

    @property
    def multi_label(self) -> bool:
        return self.bundle.multi_label

    @property
    def thresholds(self) -> list[float] | None:
        """A multi-label model's per-label thresholds, tuned on validation; None for single-label."""
        return self.bundle.thresholds

    @functools.cached_property
    def encoder(self):
        """The process's tokenizer (a labeling actor's batches are encoded with it too), loaded on first
        use: labeling in-process encodes in other processes, and this one need not load spaCy."""
        return text_encoder(self.bundle.tokenizer, self.bundle.vocab, self.bundle.max_tokens)

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        lengths, ids = self.encoder.encode_batch(texts)
        return np.split(ids, np.cumsum(lengths)[:-1]) if len(texts) else []

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        return self.predict_encoded(self.encode(texts))

    def predict_encoded(self, sequences: Sequence[np.ndarray]) -> np.ndarray:
        """[rows, classes] float32 probabilities for int32 id arrays, in the given order."""
        probs = np.zeros((len(sequences), len(self.labels)), dtype=np.float32)
        lengths = [len(s) for s in sequences]
        for positions in bucket_batches(lengths, self.batching):
            ids, lens = pad_batch([sequences[i] for i in positions])
            self.padding.add(lens)
            probs[positions] = self._forward(ids, lens)
        return probs

    def _forward(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), autocast(self.device, self.dtype):
            logits = self.bundle.model(torch.from_numpy(ids).to(self.device), torch.from_numpy(lengths).to(self.device))
        # one sigmoid per label when labels are independent, a softmax over them when exactly one applies
        scores = torch.sigmoid(logits.float()) if self.multi_label else torch.softmax(logits.float(), dim=-1)
        return scores.cpu().numpy()
