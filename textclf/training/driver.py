"""`textclf train`: Ray Train DDP over CPU or GPU workers, ending in a model bundle with a report."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from textclf.bundle import save_bundle
from textclf.errors import BundleError, ConfigError, TextclfError
from textclf.evaluation.metrics import metrics_from_confusion
from textclf.evaluation.multilabel import multilabel_metrics
from textclf.runtime.compat import checkpoint_snapshot_filename, unused_trainer_callbacks
from textclf.runtime.faults import worker_env
from textclf.runtime.precision import check_local_precision
from textclf.runtime.progress import JsonRelay, is_interactive
from textclf.runtime.ray_session import ray_session, stop_data_stats_actor
from textclf.text.wordpiece import WordPieceEncoder, WordPieceTokenizer
from textclf.training.config import FINE_TUNED, TrainConfig, default_lr, default_optimizer, default_patience
from textclf.training.data import check_inputs, prepare_training_data
from textclf.training.plan import WorkerPlan
from textclf.training.quality import (
    baselines_macro_f1,
    multi_label_baselines,
    multi_label_warning,
    quality_warning,
)

RUN_NAME = "train"
BASELINE_ROWS = 200_000  # training rows naive Bayes sees: a few seconds, and plenty for a baseline
# glibc malloc settings for the training workers. Ray Train runs the loop in a thread of its own, whose
# malloc arena lives in 64 MB heaps that glibc unmaps as they empty, so every step's activations came
# back as fresh pages (~350k page faults an epoch, a sixth of the step time on 2 cores). One arena, a
# fixed 32 MB mmap threshold and no trimming keep freed memory for the next step.
WORKER_MALLOC = "glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824"


def default_storage(out_dir: Path) -> Path:
    """Checkpoints live beside the bundle, not inside it, so the bundle stays small to copy."""
    return out_dir.with_name(out_dir.name + ".checkpoints")


def train(
    config: TrainConfig,
    train_path: str,
    validation_path: str | None,
    out_dir: str | Path,
    resume: bool = False,
    address: str | None = None,
    storage: str | None = None,
) -> dict:
    """Train, then write the best epoch's bundle to `out_dir`; returns a summary dict."""
    check_inputs(config, train_path, validation_path)  # fail on bad input before anything changes
    check_local_precision(config.precision, config.use_gpu, address)
    encoder = _pretrained_encoder(config)
    out_dir = Path(out_dir).resolve()
    storage_path = storage or str(default_storage(out_dir))
    run_dir = Path(storage_path) / RUN_NAME
    if "://" not in storage_path:
        if resume and not run_dir.is_dir():
            raise ConfigError(f"--resume: no checkpoints to resume from under {run_dir}")
        if resume:
            _check_latest_checkpoint(run_dir)
            for partial in run_dir.glob(".tmp-checkpoint-*"):  # a checkpoint a kill cut short
                shutil.rmtree(partial, ignore_errors=True)
        if not resume and run_dir.exists():
            shutil.rmtree(run_dir)  # a fresh run must not pick up an old run's checkpoints
    started = time.monotonic()
    local_cpus = os.cpu_count() or 1
    # Local Ray gets one logical CPU more than the workers take, so whatever else Ray schedules during
    # training finds room (workers holding every CPU is a classic hang on small machines). Its steps
    # share the machine with Ray's own processes: ray_session's options leave out those not needed.
    with ray_session(
        address, num_cpus=max(local_cpus, config.workers) + 1, dashboard=False, keep_idle_workers=False
    ) as local_session:
        data = prepare_training_data(
            config,
            train_path,
            validation_path,
            wordpieces=encoder.tokenizer if encoder else None,
            wordpiece_vocab_size=encoder.config["vocab_size"] if encoder else 0,
        )
        import ray
        from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
        from ray.train.v2.api.config import LoggingConfig

        from textclf.models.transformer import pretrained_encoder_state
        from textclf.training.loop import train_loop_per_worker

        vectors, coverage = _pretrained_vectors(config, data.vocab.itos) if data.vocab is not None else (None, None)
        model_config = _model_config(
            config,
            data.vocab_size,
            len(data.labels),
            vectors_dim=vectors.shape[1] if vectors is not None else None,
            encoder_config=encoder.config if encoder else None,
            multi_label=data.multi_label,
        )
        optimizer = config.optimizer or default_optimizer(config.arch, data.multi_label)
        config = dataclasses.replace(
            config,
            optimizer=optimizer,
            lr=config.lr or default_lr(config.arch, len(data.labels), optimizer, model_config.get("pooling")),
            patience=default_patience(optimizer) if config.patience is None else config.patience,
        )
        pretrained = pretrained_encoder_state(encoder.folder) if encoder else vectors
        cluster_cpus = int(ray.cluster_resources().get("CPU", local_cpus))
        interactive = is_interactive()
        relay = None if interactive else JsonRelay()  # plain JSON lines in job logs
        plan = WorkerPlan(
            config=config,
            model_config=model_config,
            labels=data.labels,
            multi_label=data.multi_label,
            train_rows=data.rows["train"],
            threads_per_worker=max(1, min(local_cpus, cluster_cpus) // config.workers),
            class_weights=_class_weights(config, data.labels, data.label_counts, data.multi_label),
            pretrained=ray.put(pretrained) if pretrained is not None else None,
            interactive=interactive,
            events=relay.queue if relay else None,
            checkpoint_dir=str(run_dir.resolve()) if "://" not in storage_path else None,
            train_shards=_shards(data.train, config.workers),
            validation_blocks=data.validation.to_arrow_refs(),
        )
        baselines = _baselines(data)
        if local_session:
            stop_data_stats_actor()  # Ray Data is done: the actor would idle beside the steps
        trainer = _trainer_class(local_session, config.workers)(
            train_loop_per_worker,
            train_loop_config={"plan": plan},
            scaling_config=ScalingConfig(
                num_workers=config.workers, use_gpu=config.use_gpu, resources_per_worker={"CPU": 1}
            ),
            run_config=RunConfig(
                name=RUN_NAME,
                storage_path=storage_path,
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                failure_config=FailureConfig(max_failures=config.max_failures),
                logging_config=LoggingConfig(log_level="WARNING"),
                # textclf prints its own progress; Ray's print patch would print it twice.
                # Fault-injection switches travel along: workers may predate them.
                worker_runtime_env={
                    "env_vars": {
                        "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
                        **worker_malloc_env(),
                        **worker_env().get("env_vars", {}),
                    }
                },
            ),
        )
        with relay or contextlib.nullcontext():
            result = _fit(trainer)
        # Written before Ray shuts down, not beside it: any Python code that runs while ray.shutdown
        # tears down the core worker can end the process (exit 1, "The core worker has already been
        # shutdown"), which a CI run once hit when the bundle was written in a thread meanwhile.
        return _write_bundle(
            result, config, data, model_config, coverage, baselines, out_dir, storage_path, time.monotonic() - started
        )


def worker_malloc_env() -> dict[str, str]:
    """GLIBC_TUNABLES for a training worker; the user's own setting, if any, is kept instead."""
    return {"GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES") or WORKER_MALLOC}


def _shards(dataset, workers: int) -> list[list]:
    """Each worker's rows (sizes differ by one at most) as object refs of Arrow tables, zero-copy
    from the materialized dataset. Workers read them with ray.get: Ray Train's own dataset split
    would keep a split coordinator and a dataset manager running beside the steps, and drop rows
    to make the shards equal."""
    rows = dataset.count()
    pieces = (
        dataset.split_at_indices([round(i * rows / workers) for i in range(1, workers)]) if workers > 1 else [dataset]
    )
    return [piece.to_arrow_refs() for piece in pieces]


def _trainer_class(local_session: bool, workers: int = 1):
    """Ray Train's data-parallel trainer with textclf's torch backend (see train_backend), without the
    helper actors textclf does not use. Ray Train's dataset callback starts a dataset manager even with
    no datasets; the placement-group cleaner removes a crashed controller's placement groups, which
    ray.shutdown does anyway when the session is local (and it needs the dashboard). Each would be one
    more process waking 100 times a second."""
    from ray.train.v2.api.data_parallel_trainer import DataParallelTrainer

    from textclf.training.backend import ImportTorchBackendEarly, backend_config

    unused = unused_trainer_callbacks(local_session)

    class Trainer(DataParallelTrainer):
        def __init__(self, train_loop_per_worker, **kwargs):
            super().__init__(train_loop_per_worker, backend_config=backend_config(), **kwargs)

        def _create_default_callbacks(self):
            kept = [c for c in super()._create_default_callbacks() if not isinstance(c, unused)]
            return [ImportTorchBackendEarly(workers), *kept] if ImportTorchBackendEarly else kept

    return Trainer


def _check_latest_checkpoint(run_dir: Path) -> None:
    """Refuse a corrupt checkpoint to resume from here, in one line; in the workers it would fail
    every retry and end as a training failure."""
    from textclf.training.checkpoint import check_training_state

    try:  # Ray Train's JSON record of the reported checkpoints; it resumes from the latest
        snapshot = json.loads((run_dir / checkpoint_snapshot_filename()).read_text())
        latest = snapshot["latest_checkpoint_result"]["checkpoint_dir_name"]
    except (OSError, ValueError, KeyError, TypeError):
        return  # no checkpoint reported yet: Ray starts the run over
    try:
        check_training_state(run_dir / latest)
    except BundleError as e:
        raise BundleError(f"--resume: {e} (train without --resume to start over)") from None


def _fit(trainer):
    from ray.train import TrainingFailedError

    try:
        result = trainer.fit()
    except TrainingFailedError as e:
        raise TextclfError(f"training failed: {_root_cause(e)}") from None
    if result.checkpoint is None:
        raise TextclfError("training ended without a checkpoint")
    return result


def _root_cause(error: BaseException) -> str:
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__


def _model_config(
    config: TrainConfig,
    vocab_size: int,
    num_classes: int,
    vectors_dim: int | None,
    encoder_config: dict | None,
    multi_label: bool = False,
) -> dict:
    """Build the model once on the driver so a bad hyper-parameter fails here, not on a worker.
    Pretrained vectors set the embedding size unless the config names one; multi-label data takes the
    model's own defaults for it (`MULTI_LABEL_OPTIONS`) unless the config names them."""
    from textclf.models import config_class, create_model

    defaults = getattr(config_class(config.arch), "MULTI_LABEL_OPTIONS", {}) if multi_label else {}
    options = {**defaults, **config.model}
    if vectors_dim is not None and "embedding_dim" not in config.model:
        options["embedding_dim"] = vectors_dim
    if encoder_config is not None:
        options["encoder"] = encoder_config
    model = create_model(config.arch, vocab_size=vocab_size, num_classes=num_classes, **options)
    return dataclasses.asdict(model.config)


@dataclasses.dataclass(frozen=True)
class PretrainedEncoder:
    folder: Path
    tokenizer: WordPieceTokenizer
    config: dict  # its Hugging Face config


def _pretrained_encoder(config: TrainConfig) -> PretrainedEncoder | None:
    """The encoder a fine-tuned architecture starts from, fetched and checked before Ray starts."""
    if config.arch not in FINE_TUNED:
        return None
    from textclf.models.pretrained import DEFAULT_PRETRAINED, read_tokenizer, resolve_pretrained
    from textclf.models.transformer import encoder_config

    folder = resolve_pretrained(config.model.get("pretrained", DEFAULT_PRETRAINED))
    tokenizer = read_tokenizer(folder)
    WordPieceEncoder(tokenizer, config.max_tokens)  # a malformed tokenizer.json fails here
    hf_config = encoder_config(folder)
    positions = hf_config.get("max_position_embeddings")
    if positions is not None and config.max_tokens > positions:
        raise ConfigError(f"--max-tokens {config.max_tokens} is more than the encoder's {positions} positions")
    return PretrainedEncoder(folder, tokenizer, hf_config)


def _pretrained_vectors(config: TrainConfig, itos: list[str]) -> tuple[np.ndarray | None, float | None]:
    if not config.embeddings:
        return None, None
    from textclf.models.embeddings import load_vectors

    vectors, coverage, dim = load_vectors(config.embeddings, itos)
    expected = config.model.get("embedding_dim")
    if expected is not None and expected != dim:
        raise ConfigError(f"--embeddings has {dim}-dimensional vectors but model.embedding_dim is {expected}")
    print(f"pretrained vectors: {dim} dims, {coverage:.1%} of the vocabulary covered", file=sys.stderr)
    return vectors.numpy(), coverage


def _class_weights(
    config: TrainConfig, labels: list[str], counts: dict[str, int], multi_label: bool = False
) -> list[float] | None:
    if config.class_weights == "none":
        return None
    if multi_label:
        raise ConfigError("--class-weights balanced is for one label per text; this data is multi-label")
    total = sum(counts.values())
    return [total / (len(labels) * counts[name]) for name in labels]  # sklearn's "balanced"


def _baselines(data) -> dict[str, float]:
    """The quick baselines' validation macro-F1 (naive Bayes fitted on at most BASELINE_ROWS rows)."""
    import pyarrow as pa
    import ray

    validation = pa.concat_tables(ray.get(data.validation.to_arrow_refs()))
    if data.multi_label:
        return multi_label_baselines(validation, data.labels, data.label_counts)
    train = pa.concat_tables(ray.get(data.train.limit(BASELINE_ROWS).to_arrow_refs()))
    return baselines_macro_f1(train, validation, data.labels, data.label_counts, data.vocab_size)


def _write_bundle(
    result, config, data, model_config, coverage, baselines, out_dir: Path, storage_path: str, elapsed: float
) -> dict:
    from textclf.evaluation.report import write_report
    from textclf.models import create_model
    from textclf.training.checkpoint import load_training_state

    with result.checkpoint.as_directory() as directory:
        _, best_state, _, state = load_training_state(Path(directory))
    model = create_model(config.arch, **model_config)
    model.load_state_dict(best_state)
    history = state["history"]
    best = next(h for h in history if h["epoch"] == state["best_epoch"])
    curves = [{k: v for k, v in h.items() if k not in ("val_confusion", "val_counts")} for h in history]
    if data.multi_label:
        rows = data.rows["validation"]
        metrics = multilabel_metrics(best["val_counts"], data.labels, round(best["val_accuracy"] * rows), rows)
        warning = multi_label_warning(best["val_counts"], metrics["micro_f1"], baselines)
        decisions = {"multi_label": True, "thresholds": best["val_thresholds"]}
    else:
        metrics = metrics_from_confusion(np.asarray(best["val_confusion"]), data.labels)
        warning = quality_warning(best["val_confusion"], metrics["macro_f1"], baselines)
        decisions = {}
    info = {
        **decisions,
        "train_config": config.to_dict(),
        "metrics": {"validation": metrics, "best_epoch": state["best_epoch"]},
        "quality": {"baselines_macro_f1": baselines, "warning": warning},
        "history": curves,
        "data": {
            "rows": data.rows,
            "label_counts": data.label_counts,
            "vocab_size": data.vocab_size,
            "embedding_coverage": coverage,
        },
        "resumed_after_epochs": state.get("resumed_after", []),  # one entry per restart from a checkpoint
        "training_time_s": round(elapsed, 2),
    }
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    save_bundle(tmp, model, config.arch, data.vocab, data.labels, data.tokenizer, config.max_tokens, info)
    write_report(tmp / "report", metrics, curves, state["best_epoch"])
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return {
        "bundle": str(out_dir),
        "checkpoints": storage_path,
        "best_epoch": state["best_epoch"],
        "epochs_run": len(history),
        "resumed_after_epochs": state.get("resumed_after", []),
        "val_accuracy": metrics["accuracy"],
        "val_macro_f1": metrics["macro_f1"],
        **({"val_micro_f1": metrics["micro_f1"]} if data.multi_label else {}),
        "padding_efficiency": best["padding_efficiency"],
        "training_time_s": round(elapsed, 2),
        "baselines_macro_f1": baselines,
        "warning": warning,
        "checkpoints_bytes": _size(Path(storage_path)) if "://" not in storage_path else None,
    }


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
