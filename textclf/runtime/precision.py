"""Arithmetic precision for training and scoring: bf16 autocast where the hardware runs it natively.

auto picks bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), where oneDNN runs the BiLSTM
markedly faster when scoring and training; float32 on other CPUs (AVX2 only), where bf16
would be emulated and slower, and where oneDNN has no bf16 LSTM at all: bf16 is refused there.
Weights, optimizer state and the loss stay float32 either way.

int8 (scoring on CPU only): dynamic quantization of the LSTM and linear layers' weights, for CPUs
without native bf16; `auto` never picks it, since it changes some labels (benchmarks/labeling.py
reports how many).
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING

from textclf.errors import ConfigError

if TYPE_CHECKING:  # imported where it runs: the labeling driver checks the option without torch
    import torch

PRECISIONS = ("auto", "bf16", "fp32")  # training
SCORING_PRECISIONS = (*PRECISIONS, "int8")


def check_precision(precision: str, choices: tuple[str, ...] = PRECISIONS) -> None:
    if precision not in choices:
        raise ConfigError(f"precision must be one of {', '.join(choices)}, got {precision!r}")


def quantizes(precision: str, device: torch.device) -> bool:
    """Whether scoring on `device` runs int8; int8 on a GPU is refused (its kernels are CPU ones)."""
    check_precision(precision, SCORING_PRECISIONS)
    if precision == "int8" and device.type != "cpu":
        raise ConfigError("precision int8 is for scoring on CPU; use auto, bf16 or fp32 on a GPU")
    return precision == "int8"


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `device`, or None for float32."""
    import torch

    check_precision(precision, SCORING_PRECISIONS)
    if precision in ("fp32", "int8"):
        return None
    native = device.type == "cuda" or native_bf16_cpu()
    if precision == "bf16" and not native:  # oneDNN has no bf16 LSTM there: it would fail mid-run
        raise ConfigError(
            "precision bf16 needs a GPU or a CPU with native bf16 (AVX512-BF16 or AMX), "
            "which this CPU lacks; use auto or fp32"
        )
    return torch.bfloat16 if native else None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    import torch

    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def check_local_precision(precision: str, use_gpu: bool, address: str | None) -> None:
    """Refuse bf16 before Ray starts when the work runs on this machine's CPU and it has no bf16.
    (Workers of a remote cluster check their own CPU when they start.)"""
    if precision == "bf16" and not use_gpu and not (address or os.environ.get("RAY_ADDRESS")):
        import torch

        compute_dtype(precision, torch.device("cpu"))


def native_bf16_cpu() -> bool:
    import torch

    return torch.ops.mkldnn._is_mkldnn_bf16_supported()
