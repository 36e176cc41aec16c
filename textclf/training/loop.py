"""The per-worker training loop that Ray Train runs on every DDP rank.

Takes a WorkerPlan (textclf.training.plan), reads its shard of the materialized
training data from the object store, batches it with the length-bucketing batcher, and reports
metrics plus a checkpoint at the end of every epoch.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
import torch.distributed as dist

from textclf.evaluation.metrics import confusion_matrix, metrics_from_confusion
from textclf.evaluation.multilabel import (
    counts_at,
    multi_hot,
    multilabel_metrics,
    threshold_counts,
    tune_thresholds,
)
from textclf.models import create_model
from textclf.runtime.compat import quiet_ray_train_report_log
from textclf.runtime.faults import fault, fire_limited
from textclf.runtime.precision import autocast, compute_dtype
from textclf.runtime.progress import Progress
from textclf.text.batching import BatchingConfig, PaddingStats, bucket_batches, pad_batch
from textclf.text.encoding import list_arrays
from textclf.training.checkpoint import load_training_state, save_training_state
from textclf.training.config import FINE_TUNED
from textclf.training.optim import Adam, LinearDecaySGD, ScheduledAdamW, SparseTables, clip_grad_norm
from textclf.training.plan import WorkerPlan

WINDOW_ROWS = 8192


def train_loop_per_worker(loop_config: dict) -> None:
    import ray.train
    import ray.train.torch

    quiet_ray_train_report_log()  # textclf prints its own epoch lines
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    plan: WorkerPlan = loop_config["plan"]
    cfg = plan.config
    torch.set_num_threads(plan.threads_per_worker)
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device()

    model = create_model(cfg.arch, **plan.model_config)
    if plan.pretrained is not None:
        weights = ray.get(plan.pretrained)  # word vectors (numpy) or an encoder's state dict
        model.load_pretrained(
            torch.from_numpy(weights) if isinstance(weights, np.ndarray) else weights, cfg.freeze_embeddings
        )
    tables = SparseTables(model, device)
    model = ray.train.torch.prepare_model(model)
    core = getattr(model, "module", model)
    train_shard, validation = _table(plan.train_shards[rank]), _table(plan.validation_blocks)
    batching = BatchingConfig(cfg.batch_tokens, cfg.max_batch_rows, WINDOW_ROWS)
    if cfg.arch in FINE_TUNED or cfg.optimizer == "sgd":  # schedules that end at the last epoch's last step
        steps = _steps_per_epoch(train_shard, batching, world, device) * cfg.epochs
        scheduled = ScheduledAdamW if cfg.arch in FINE_TUNED else LinearDecaySGD
        optimizer = scheduled(core, tables, cfg.lr, cfg.weight_decay, total_steps=steps)
    else:
        optimizer = Adam(core, tables, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if plan.multi_label:  # a yes/no per label: a sigmoid each rather than a softmax over them
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="sum")
    else:
        weights = torch.tensor(plan.class_weights, device=device) if plan.class_weights else None
        loss_fn = torch.nn.CrossEntropyLoss(weight=weights, reduction="sum")

    state = {"epoch": 0, "history": [], "best_epoch": None, "best_score": -1.0, "bad_epochs": 0}
    best_state = _cpu_state(core)
    checkpoint = ray.train.get_checkpoint()
    if checkpoint is not None:  # resuming: after a failure or with --resume
        with checkpoint.as_directory() as directory:
            model_state, best_state, optimizer_state, state = load_training_state(Path(directory))
        core.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        state.setdefault("resumed_after", []).append(state["epoch"])
        state.setdefault("best_score", -1.0)  # checkpoints of older versions kept the best accuracy
        if rank == 0:
            _log(
                {"event": "resume", "after_epoch": state["epoch"]},
                plan,
                f"resuming after epoch {state['epoch']} from its checkpoint",
            )

    if world > 1:
        tables.broadcast()
    loop = _Loop(model, core, optimizer, loss_fn, device, plan, rank, world, batching)
    for epoch in range(state["epoch"] + 1, cfg.epochs + 1):
        started = time.monotonic()
        rng = np.random.default_rng([cfg.seed, epoch, rank])
        train = loop.train_epoch(train_shard, rng, epoch)
        val = loop.validate(validation)
        record = {"epoch": epoch, **train, **val, "epoch_time_s": round(time.monotonic() - started, 3)}
        state["history"].append(record)
        state["epoch"] = epoch
        # The kept epoch: the best validation macro-F1 (on imbalanced classes accuracy rewards predicting
        # the majority), or micro-F1 for multi-label. Patience counts epochs in which neither it nor the
        # validation loss improved: a slowly learning model's F1 wobbles by noise for a few epochs while
        # its loss still falls.
        improved = False
        if val["val_score"] > state["best_score"]:
            state.update(best_epoch=epoch, best_score=val["val_score"])
            best_state, improved = _cpu_state(core), True
        if val["val_loss"] < state.get("best_loss", float("inf")):
            state["best_loss"], improved = val["val_loss"], True
        state["bad_epochs"] = 0 if improved else state["bad_epochs"] + 1
        patience_ran_out = state["bad_epochs"] >= cfg.patience > 0 and epoch >= cfg.min_epochs
        stop = patience_ran_out or epoch == cfg.epochs
        if rank == 0:
            _log_epoch(record, state, plan)
        _report(
            record | {"best_epoch": state["best_epoch"], "stopped": stop},
            rank,
            core,
            best_state,
            optimizer,
            state,
            plan.checkpoint_dir,
        )
        if stop:
            break


def _steps_per_epoch(shard: pa.Table, batching: BatchingConfig, world: int, device) -> int:
    """Optimizer steps in an epoch: the batches of the largest shard (ranks step together). Shuffling
    reorders rows of a window, not the lengths it holds, so every epoch has as many."""
    lengths = pc.list_value_length(shard.column("ids")).to_numpy(zero_copy_only=False)
    steps = sum(
        sum(1 for _ in bucket_batches(lengths[start : start + WINDOW_ROWS], batching))
        for start in range(0, len(lengths), WINDOW_ROWS)
    )
    if world > 1:
        count = torch.tensor([steps], device=device)
        dist.all_reduce(count, op=dist.ReduceOp.MAX)
        steps = int(count.item())
    return steps


def _table(block_refs: list) -> pa.Table:
    """Blocks of the materialized dataset, read from the object store without a copy. A rank with
    no rows (fewer rows than workers) gets an empty table and keeps stepping with the others."""
    import ray

    tables = ray.get(block_refs)
    if not tables:
        return pa.table({"ids": pa.array([], pa.list_(pa.int32())), "label": pa.array([], pa.int32())})
    return pa.concat_tables(tables)


def _cpu_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in module.state_dict().items()}


def _report(metrics: dict, rank: int, core, best_state, optimizer, state, checkpoint_dir: str | None) -> None:
    """Report the epoch, rank 0 with a checkpoint (every rank holds the same weights after DDP).
    With local storage the checkpoint is written beside the others and renamed into place, instead of
    Ray copying a temporary folder: the bow model's checkpoint is about half a gigabyte."""
    import ray.train

    if rank != 0:
        ray.train.report(metrics)
        return
    if checkpoint_dir is None:  # remote storage: Ray uploads the temporary folder
        with tempfile.TemporaryDirectory() as tmp:
            save_training_state(Path(tmp), core.state_dict(), best_state, optimizer, state)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
        return
    Path(checkpoint_dir).mkdir(parents=True, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=checkpoint_dir, prefix=".tmp-checkpoint-")
    try:
        save_training_state(Path(tmp), core.state_dict(), best_state, optimizer, state)
        ray.train.report(
            metrics,
            checkpoint=ray.train.Checkpoint.from_directory(tmp),
            checkpoint_upload_fn=functools.partial(_move_checkpoint, checkpoint_dir),
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _move_checkpoint(checkpoint_dir: str, checkpoint, name: str):
    import ray.train

    destination = Path(checkpoint_dir) / name
    os.replace(checkpoint.path, destination)
    return ray.train.Checkpoint.from_directory(str(destination))


def _log_epoch(record: dict, state: dict, plan: WorkerPlan) -> None:
    micro = f"val_micro_f1 {record['val_micro_f1']:.4f}  " if "val_micro_f1" in record else ""
    _log(
        {"event": "epoch", **record, "best_epoch": state["best_epoch"]},
        plan,
        f"epoch {record['epoch']}: train_loss {record['train_loss']:.4f}  val_loss {record['val_loss']:.4f}  "
        f"val_accuracy {record['val_accuracy']:.4f}  {micro}val_macro_f1 {record['val_macro_f1']:.4f}  "
        f"{record['tokens_per_s']:.0f} tokens/s  (best epoch {state['best_epoch']})",
    )


def _log(event: dict, plan: WorkerPlan, text: str) -> None:
    """A line for people in a terminal; otherwise one JSON object, relayed to the driver's stderr."""
    if plan.events is not None:
        plan.events.put(event)
    else:
        print(text if plan.interactive else json.dumps(event), file=sys.stderr, flush=True)


def _kill_point(rank: int) -> tuple[int, int] | None:
    """(epoch, step) at which this rank dies, when the `train_worker_kill_at` fault
    ("EPOCH:STEP:RANK") names it; `train_worker_kill` ("FOLDER:N") caps the deaths across restarts."""
    where = fault("train_worker_kill_at")
    if where is None:
        return None
    epoch, step, at_rank = map(int, where.split(":"))
    return (epoch, step) if at_rank == rank else None


class _Loop:
    def __init__(self, model, core, optimizer, loss_fn, device, plan: WorkerPlan, rank, world, batching) -> None:
        self.model, self.core, self.optimizer, self.loss_fn = model, core, optimizer, loss_fn
        # SGD's rate is per text, as fastText's: a batch's loss is summed. Averaged, a batch of 128 short
        # texts moved the weights as little as one of 8 long ones, and a small corpus learned nothing.
        # Clipping stays at the averaged gradient's scale: the summed one clipped at 5 learned 2.6 points less.
        self.per_text_rate = isinstance(optimizer, LinearDecaySGD)
        self.device, self.plan, self.rank, self.world, self.batching = device, plan, rank, world, batching
        self.dtype = compute_dtype(plan.config.precision, device)
        self.kill_at = _kill_point(rank)

    def _batches(self, shard: pa.Table, rng: np.random.Generator | None) -> Iterator[tuple]:
        for start in range(0, shard.num_rows, WINDOW_ROWS):
            table = shard.slice(start, WINDOW_ROWS)
            sequences = list_arrays(table.column("ids"))
            column = table.column("label")
            # multi-label: each row's label indices; the batch's targets are a multi-hot matrix
            labels = list_arrays(column) if pa.types.is_list(column.type) else column.to_numpy()
            # a random permutation before the stable length sort shuffles rows of equal length
            order = rng.permutation(len(sequences)) if rng is not None else np.arange(len(sequences))
            lengths = np.fromiter((len(sequences[i]) for i in order), dtype=np.int64, count=len(order))
            for positions in bucket_batches(lengths, self.batching, rng):
                rows = order[positions]
                ids, lens = pad_batch([sequences[i] for i in rows])
                if isinstance(labels, list):
                    targets = multi_hot([labels[i] for i in rows], len(self.plan.labels)).astype(np.float32)
                else:
                    targets = labels[rows].astype(np.int64)
                yield (
                    torch.from_numpy(ids).to(self.device),
                    torch.from_numpy(lens).to(self.device),
                    torch.from_numpy(targets).to(self.device),
                )

    def _any_rank_has(self, has_batch: bool) -> bool:
        """Ranks with uneven shards keep stepping together: DDP hangs if one rank stops early."""
        if self.world == 1:
            return has_batch
        flag = torch.tensor([int(has_batch)], device=self.device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return bool(flag.item())

    def train_epoch(self, shard, rng: np.random.Generator, epoch: int) -> dict:
        self.model.train()
        padding, loss_sum, rows = PaddingStats(), 0.0, 0
        progress = None
        if self.rank == 0:
            events = self.plan.events
            progress = Progress(
                f"epoch {epoch}",
                self.plan.train_rows // self.world,
                interactive=self.plan.interactive,
                in_ray_worker=True,
                sink=events.put if events is not None else None,
            )
        started = time.monotonic()
        batches, last, step = self._batches(shard, rng), None, 0
        while True:
            batch = next(batches, None)
            if not self._any_rank_has(batch is not None):
                break
            step += 1
            if self.kill_at == (epoch, step) and fire_limited("train_worker_kill"):
                os._exit(1)  # as an OOM kill or a lost node would: no cleanup, peers mid-collective
            # an exhausted rank repeats its last batch with zero weight so the collective ops line up
            ids, lens, y = batch if batch is not None else last
            weight = 1.0 if batch is not None else 0.0
            last = (ids, lens, y)
            with autocast(self.device, self.dtype):
                logits = self.model(ids, lens)
            loss = self.loss_fn(logits.float(), y)
            self.optimizer.zero_grad(set_to_none=True)
            summed = len(y) if self.per_text_rate else 1  # clipping bounds the gradient per text either way
            (loss * (weight / len(y) * summed)).backward()
            if self.world > 1:
                self.optimizer.tables.all_reduce_grads(self.world)
            if self.plan.config.clip_norm > 0:
                clip_grad_norm(self.optimizer.parameters, self.plan.config.clip_norm * summed)
            self.optimizer.step()
            if batch is not None:
                lens_np = lens.cpu().numpy()
                padding.add(lens_np)
                loss_sum += loss.item()
                rows += len(y)
                if progress:
                    progress.update(len(y), loss=loss_sum / rows, padding_efficiency=padding.efficiency)
        if progress:
            progress.close()
        totals = self._sum([loss_sum, rows, padding.real_tokens, padding.padded_tokens])
        elapsed = time.monotonic() - started
        return {
            "train_loss": totals[0] / max(totals[1], 1),
            "train_rows": int(totals[1]),
            "steps": step,
            "real_tokens": int(totals[2]),
            "padding_efficiency": totals[2] / max(totals[3], 1),
            "tokens_per_s": totals[2] / elapsed,
            "train_time_s": elapsed,
        }

    def validate(self, shard) -> dict:
        """Each rank scores every world-th batch; summed confusion matrices give exact metrics."""
        if self.plan.multi_label:
            return self.validate_multi_label(shard)
        self.core.eval()
        k = len(self.plan.labels)
        confusion = np.zeros((k, k), dtype=np.int64)
        loss_sum = 0.0
        with torch.no_grad():
            for index, (ids, lens, y) in enumerate(self._batches(shard, None)):
                if index % self.world != self.rank:  # validation is not split: ranks take turns
                    continue
                with autocast(self.device, self.dtype):
                    logits = self.core(ids, lens).float()
                loss_sum += float(self.loss_fn(logits, y))
                confusion += confusion_matrix(y.cpu().numpy(), logits.argmax(-1).cpu().numpy(), k)
        totals = self._sum([loss_sum] + confusion.ravel().tolist())
        confusion = np.asarray(totals[1:], dtype=np.int64).reshape(k, k)
        metrics = metrics_from_confusion(confusion, self.plan.labels)
        return {
            "val_loss": totals[0] / max(confusion.sum(), 1),
            "val_accuracy": metrics["accuracy"],
            "val_macro_f1": metrics["macro_f1"],
            "val_score": metrics["macro_f1"],
            "val_confusion": confusion.tolist(),
        }

    def validate_multi_label(self, shard) -> dict:
        """Each rank scores every world-th batch; summed per-label counts at every grid threshold tune
        each label's threshold on the whole split, then give exact metrics at those thresholds."""
        self.core.eval()
        k = len(self.plan.labels)
        scored, loss_sum = [], 0.0
        with torch.no_grad():
            for index, (ids, lens, y) in enumerate(self._batches(shard, None)):
                if index % self.world != self.rank:
                    continue
                with autocast(self.device, self.dtype):
                    logits = self.core(ids, lens).float()
                loss_sum += float(self.loss_fn(logits, y))
                scored.append((y.cpu().numpy() > 0.5, torch.sigmoid(logits).cpu().numpy()))
        targets = np.concatenate([t for t, _ in scored]) if scored else np.zeros((0, k), bool)
        probs = np.concatenate([p for _, p in scored]) if scored else np.zeros((0, k), np.float32)
        counts = threshold_counts(targets, probs)
        totals = self._sum([loss_sum, len(targets)] + counts.ravel().tolist())
        counts = np.asarray(totals[2:], dtype=np.int64).reshape(counts.shape)
        thresholds = tune_thresholds(counts)
        exact = int((targets == (probs >= thresholds[None, :])).all(axis=1).sum())
        exact = int(self._sum([exact])[0])
        rows = int(totals[1])
        metrics = multilabel_metrics(counts_at(counts, thresholds), self.plan.labels, exact, rows)
        return {
            "val_loss": totals[0] / max(rows, 1),
            "val_accuracy": metrics["accuracy"],
            "val_micro_f1": metrics["micro_f1"],
            "val_macro_f1": metrics["macro_f1"],
            "val_score": metrics["micro_f1"],
            "val_counts": metrics["counts"],
            "val_thresholds": thresholds.tolist(),
        }

    def _sum(self, values: list[float]) -> list[float]:
        if self.world == 1:
            return values
        tensor = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return tensor.tolist()
