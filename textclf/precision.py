"""Arithmetic precision for training and scoring: bf16 autocast where the hardware runs it natively.

auto picks bf16 on CUDA and on CPUs with native bf16 (AVX512-BF16, AMX), where oneDNN runs the BiLSTM
about twice as fast when scoring and 1.4x when training; float32 on other CPUs, where bf16 would be
emulated and slower. Weights, optimizer state and the loss stay float32 either way.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from textclf.errors import ConfigError

if TYPE_CHECKING:  # imported where it runs: the labeling driver checks the option without torch
    import torch

PRECISIONS = ("auto", "bf16", "fp32")


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def compute_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `device`, or None for float32."""
    import torch

    check_precision(precision)
    if precision == "fp32":
        return None
    if precision == "bf16" or device.type == "cuda" or torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    import torch

    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()
