"""What the training driver hands each Ray Train worker: one frozen dataclass, torch-free so that Ray
Train's controller can pass it on without importing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textclf.training.config import TrainConfig


@dataclass(frozen=True)
class WorkerPlan:
    config: TrainConfig  # with the learning rate resolved
    model_config: dict[str, Any]  # the model's config fields: create_model(config.arch, **model_config)
    labels: list[str]
    multi_label: bool  # any number of labels per text: a sigmoid per label, thresholds tuned on validation
    train_rows: int  # across all ranks
    threads_per_worker: int  # torch threads: the node's cores shared among its workers
    class_weights: list[float] | None
    pretrained: Any  # object ref of pretrained vectors (numpy [vocab, dim]) or encoder weights (a state dict), or None
    interactive: bool  # progress as bars (a terminal) or JSON lines
    events: Any  # ray.util.queue.Queue that relays JSON lines to the driver, or None: print them
    checkpoint_dir: str | None  # local storage: each checkpoint is written beside the others and renamed in
    train_shards: list[list]  # per rank, object refs of the Arrow blocks of its training rows
    validation_blocks: list  # object refs of the validation rows' Arrow blocks (every rank reads all)
