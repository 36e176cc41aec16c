"""The `textclf` command line: a thin click group; library errors become exit codes here."""

from __future__ import annotations

from pathlib import Path

import click

from textclf.errors import TextclfError
from textclf.labeling.config import FORMATS, LABEL_DEFAULTS, RUNNERS
from textclf.runtime.precision import PRECISIONS, SCORING_PRECISIONS
from textclf.training.config import (
    ARCHITECTURES,
    BOW_LR_PER_CLASS,
    BOW_MAX_LR,
    CLASS_WEIGHTS,
    DEFAULT_LR,
    DEFAULT_PATIENCE,
    FINE_TUNE_LR,
    OPTIMIZERS,
    SGD_LR,
    SGD_LR_SUBLINEAR,
    TRAIN_DEFAULTS,
)


class _ExitCodeError(click.ClickException):
    """A library error shown as one line, keeping its exit code (2 bad input, 3 partial)."""

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except TextclfError as e:
            raise _ExitCodeError(str(e), e.exit_code) from None


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="textclf")
def cli() -> None:
    """Train text classifiers with Ray Train and label Parquet corpora with Ray Data."""


def train_option(name: str, text: str, **kwargs):
    """The `textclf train` flag of TrainConfig field `name`; its help shows the dataclass's default, the
    one place it is written. The flag itself defaults to None (not given), so a --config value stands."""
    return click.option("--" + name.replace("_", "-"), help=f"{text} (default {TRAIN_DEFAULTS[name]})", **kwargs)


@cli.command()
@click.option("--train", "train_path", required=True, help="Training Parquet file or folder (columns text, label).")
@click.option("--validation", "validation_path", help="Validation Parquet; default: 10% held out of --train.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="Bundle folder to write.")
@click.option("--config", "config_path", type=click.Path(), help="YAML file of training options (flags win).")
@train_option("arch", f"Architecture: {', '.join(ARCHITECTURES)}.")
@train_option("epochs", "Maximum epochs; early stopping usually ends sooner.", type=int)
@train_option("workers", "Ray Train DDP workers.", type=int)
@click.option("--use-gpu/--no-gpu", default=None, help="One GPU per worker, NCCL.")
@train_option(
    "precision",
    "Training arithmetic; auto: bf16 autocast on GPUs and on CPUs with native bf16.",
    type=click.Choice(PRECISIONS),
)
@train_option("batch_tokens", "Padded tokens per batch.", type=int)
@train_option("max_tokens", "Tokens kept per text.", type=int)
@click.option(
    "--optimizer",
    type=click.Choice(OPTIMIZERS),
    help="adam, or sgd with a linearly decaying rate (fastText's); default: sgd for bow on multi-label data, "
    "else adam (transformer: AdamW, warm-up then linear decay).",
)
@click.option(
    "--lr",
    type=float,
    help=f"Learning rate (adam: {DEFAULT_LR:g}, bow {BOW_LR_PER_CLASS:g} per class, at most {BOW_MAX_LR:g}; "
    f"sgd: {SGD_LR:g}, bow's sublinear pooling {SGD_LR_SUBLINEAR:g}, falling to 0; "
    f"transformer: AdamW's peak {FINE_TUNE_LR:g}).",
)
@train_option("seed", "Random seed.", type=int)
@click.option(
    "--patience",
    type=int,
    help="Stop after this many epochs in which neither validation macro-F1 (multi-label: micro-F1) nor loss "
    f"improved; 0: never (default {DEFAULT_PATIENCE}; sgd: 0, its rate falling to 0 ends the run).",
)
@train_option("min_epochs", "Epochs before early stopping may end the run.", type=int)
@click.option(
    "--pretrained",
    help="transformer: the encoder to fine-tune, a Hugging Face model folder, a hub name, or minilm-l6 "
    "(built in, the default).",
)
@click.option("--embeddings", type=click.Path(), help="Pretrained vectors, GloVe or word2vec text (.gz ok).")
@click.option("--freeze-embeddings/--tune-embeddings", default=None, help="Keep pretrained vectors fixed.")
@train_option("class_weights", "Weight the loss by class.", type=click.Choice(CLASS_WEIGHTS))
@train_option("max_failures", "Worker failures to recover from via checkpoints.", type=int)
@train_option("text_column", "Text column.")
@train_option("label_column", "Label column.")
@click.option("--resume", is_flag=True, help="Continue the stopped run from its last checkpoint.")
@click.option("--address", envvar="RAY_ADDRESS", help="Existing Ray cluster; default: local Ray in-process.")
@click.option("--storage", help="Checkpoint storage all nodes reach (default: OUT.checkpoints beside OUT).")
def train(train_path, validation_path, out_dir, config_path, resume, address, storage, **options) -> None:
    """Train a classifier with Ray Train and write a model bundle.

    \b
    Example:
      textclf train --train data/rt/train --validation data/rt/validation --out models/rt --workers 2
    """
    from textclf.training.config import load_train_config
    from textclf.training.driver import train as run_training

    config = load_train_config(config_path, options)
    summary = run_training(
        config, train_path, validation_path, out_dir, resume=resume, address=address, storage=storage
    )
    micro = f"micro-F1 {summary['val_micro_f1']:.4f}, " if "val_micro_f1" in summary else ""
    accuracy = "subset accuracy" if micro else "accuracy"
    click.echo(
        f"best epoch {summary['best_epoch']} of {summary['epochs_run']}: validation {accuracy} "
        f"{summary['val_accuracy']:.4f}, {micro}macro-F1 {summary['val_macro_f1']:.4f}, "
        f"padding efficiency {summary['padding_efficiency']:.3f}, {summary['training_time_s']:.1f} s"
    )
    click.echo(f"bundle: {summary['bundle']}  (report: {summary['bundle']}/report)")
    size = summary["checkpoints_bytes"]
    click.echo(
        f"checkpoints: {summary['checkpoints']}"
        + (
            f" ({size / 2**20:,.0f} MiB; only --resume needs them: delete the folder to free the space)"
            if size is not None
            else ""
        )
    )
    baselines = summary["baselines_macro_f1"]
    if micro:
        click.echo(
            "baseline on the same validation rows: the most frequent label for every text, micro-F1 "
            f"{baselines['most_frequent_label']:.4f}"
        )
    else:
        click.echo(
            f"baselines on the same validation rows: majority label macro-F1 {baselines['majority']:.4f}, "
            f"naive Bayes {baselines['naive_bayes']:.4f}"
        )
    if summary["warning"]:
        click.echo(f"warning: {summary['warning']}", err=True)


PRECISION_OPTION = click.option(
    "--precision",
    type=click.Choice(SCORING_PRECISIONS),
    default="auto",
    show_default=True,
    help="Scoring arithmetic. auto: bf16 on GPUs and on CPUs with native bf16 (about 2x faster BiLSTM), else fp32; "
    "int8: quantized weights for CPUs without bf16 (changes a few labels).",
)


@cli.command()
@click.argument("model_dir", type=click.Path())
@click.argument("data", type=click.Path())
@click.option("--text-column", default="text", show_default=True)
@click.option("--label-column", default="label", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@PRECISION_OPTION
def evaluate(model_dir, data, text_column, label_column, as_json, precision) -> None:
    """Score a bundle on labeled Parquet data.

    \b
    Example:
      textclf evaluate models/rt data/rt/test --json
    """
    import json

    from textclf.evaluation.evaluate import evaluate as run_evaluation
    from textclf.evaluation.metrics import format_metrics
    from textclf.evaluation.multilabel import format_multilabel_metrics

    metrics = run_evaluation(model_dir, data, text_column, label_column, precision)
    formatted = format_multilabel_metrics if metrics.get("multi_label") else format_metrics
    click.echo(json.dumps(metrics) if as_json else formatted(metrics))


TOP_K_OPTION = click.option(
    "--top-k",
    type=int,
    default=LABEL_DEFAULTS["top_k"],
    show_default=True,
    help="Give each text its K most probable labels (with --threshold, those above it). "
    "Default: 1, or for a multi-label model every label above its tuned threshold.",
)
THRESHOLD_OPTION = click.option(
    "--threshold",
    type=float,
    default=LABEL_DEFAULTS["threshold"],
    show_default=True,
    help="Only labels with at least this probability (a text may get none); "
    "for a multi-label model, in place of its tuned per-label thresholds.",
)


@cli.command()
@click.argument("model_dir", type=click.Path())
@click.argument("texts", nargs=-1)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line (label, confidence, probs).")
@TOP_K_OPTION
@THRESHOLD_OPTION
@PRECISION_OPTION
def predict(model_dir, texts, as_json, top_k, threshold, precision) -> None:
    """Label texts given as arguments, or one per line on stdin (an empty text gets no label).

    One line per text: LABEL, CONFIDENCE, TEXT separated by tabs; with --top-k or --threshold, or with a
    multi-label model, the chosen labels and their confidences comma-separated, most probable first.

    \b
    Example:
      textclf predict models/rt "a gorgeous, witty film" "two hours I will never get back"
      textclf predict models/news --top-k 3 --threshold 0.1 < texts.txt
    """
    import json
    import sys

    from textclf.api import load, unlabelable
    from textclf.inference.selection import check_selection, selects

    check_selection(top_k, threshold)
    classifier = load(model_dir, precision=precision)
    texts = list(texts) or [line.rstrip("\n") for line in sys.stdin]
    probs = classifier.predict_proba(texts)
    chosen = classifier.choose(probs, top_k, threshold) if selects(top_k, threshold, classifier.multi_label) else None
    for i, (text, error) in enumerate(zip(texts, unlabelable(texts))):
        if error is not None:  # the rule `label` applies
            record = {"text": text, "label": None, "confidence": None, "error": error}
            click.echo(json.dumps(record) if as_json else f"\t\t{text}")
            continue
        best = int(probs[i].argmax())
        label, confidence = classifier.labels[best], float(probs[i][best])
        if as_json:
            record = {"text": text, "label": label, "confidence": confidence}
            if chosen is not None:
                record.update(labels=[n for n, _ in chosen[i]], confidences=[c for _, c in chosen[i]])
            record["probs"] = dict(zip(classifier.labels, map(float, probs[i])))
            click.echo(json.dumps(record))
        elif chosen is not None:
            names, scores = ",".join(n for n, _ in chosen[i]), ",".join(f"{c:.4f}" for _, c in chosen[i])
            click.echo(f"{names}\t{scores}\t{text}")
        else:
            click.echo(f"{label}\t{confidence:.4f}\t{text}")


@cli.command()
@click.argument("source")
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--text-column", default="text", show_default=True, help="Column holding the text.")
@click.option("--label-column", default="label", show_default=True, help="Column holding the label.")
@click.option("--id-column", help="Column of unique row ids; default: ids derived from the source rows.")
@click.option(
    "--split",
    "split_text",
    default="0.8,0.1,0.1",
    show_default=True,
    help="Train,validation,test fractions for sources without their own splits.",
)
@click.option("--seed", default=0, show_default=True, type=int, help="Seed of the stratified split.")
@click.option(
    "--label-separator",
    help="Multi-label: split each label value on this string (e.g. '|' for 'news|sport').",
)
@click.option("--overwrite", is_flag=True, help="Replace OUT if it exists and is not empty.")
def prepare(source, out, text_column, label_column, id_column, split_text, seed, label_separator, overwrite) -> None:
    """Split a dataset or files into train/validation/test Parquet.

    SOURCE is a built-in offline corpus (rotten-tomatoes, fortunes, 20newsgroups, debian-packages), a
    CSV/TSV/JSON/JSONL/Parquet/TXT file, a folder or glob of them, or a Hugging Face dataset name.
    A list-valued label column, --label-separator or several __label__ tags on a fastText line make
    the data multi-label (any number of labels per text).

    \b
    Example:
      textclf prepare rotten-tomatoes data/rt
      textclf prepare reviews.csv data/reviews --text-column body --label-column stars
      textclf prepare posts.csv data/posts --label-column tags --label-separator '|'
    """
    from textclf.data.prepare import DataConfig, parse_split
    from textclf.data.prepare import prepare as run_prepare

    config = DataConfig(
        text_column=text_column,
        label_column=label_column,
        id_column=id_column,
        split=parse_split(split_text),
        seed=seed,
        label_separator=label_separator,
    )
    summary = run_prepare(source, out, config, overwrite=overwrite)
    rows = ", ".join(f"{name} {n:,}" for name, n in summary["rows"].items())
    labels = ", ".join(f"{label} {n:,}" for label, n in summary["labels"].items())
    click.echo(f"wrote {summary['out']}: {rows} rows (ids {summary['ids']})")
    click.echo(f"{'multi-label (texts per label)' if summary['multi_label'] else 'labels'}: {labels}")
    click.echo(f"dropped {summary['dropped']:,} rows with empty text or label")


@cli.command()
@click.argument("model_dir", type=click.Path())
@click.argument("input_spec", metavar="INPUT")
@click.argument("output", type=click.Path(file_okay=False))
@click.option("--text-column", default=LABEL_DEFAULTS["text_column"], show_default=True)
@click.option(
    "--id-column",
    default=LABEL_DEFAULTS["id_column"],
    show_default=True,
    help="Ids to carry over; files without it get ids from their path and row number.",
)
@click.option("--keep-columns", default="", help="Comma-separated input columns copied to the output.")
@click.option(
    "--probabilities",
    is_flag=True,
    help="Add scores (a struct: label name -> probability) and probs (a list, label order in the schema metadata).",
)
@TOP_K_OPTION
@THRESHOLD_OPTION
@click.option("--format", "fmt", type=click.Choice(FORMATS), default=LABEL_DEFAULTS["format"], show_default=True)
@click.option("--batch-tokens", type=int, help="Padded tokens per inference batch (default 4096 on CPU, 16384 on GPU).")
@click.option(
    "--concurrency", type=int, help="Inference actors (default: one per GPU with --use-gpu, else one per CPU core)."
)
@click.option("--use-gpu", is_flag=True, help="One GPU per inference actor.")
@PRECISION_OPTION
@click.option(
    "--runner",
    type=click.Choice(RUNNERS),
    default=LABEL_DEFAULTS["runner"],
    show_default=True,
    help="ray: Ray Data's actor pool; in-process: this process alone, without Ray; auto: in-process when "
    "the input is small for its model (Ray's start-up would not pay back) and no cluster is given.",
)
@click.option(
    "--stall-timeout",
    type=float,
    default=LABEL_DEFAULTS["stall_timeout_s"],
    show_default=True,
    help="Fail when no rows are labeled for this many seconds (a hung actor).",
)
@click.option("--overwrite", is_flag=True, help="Start over in an OUTPUT that holds another or a finished run.")
@click.option("--address", envvar="RAY_ADDRESS", help="Existing Ray cluster; default: local Ray in-process.")
def label(
    model_dir,
    input_spec,
    output,
    text_column,
    id_column,
    keep_columns,
    probabilities,
    top_k,
    threshold,
    fmt,
    batch_tokens,
    concurrency,
    use_gpu,
    precision,
    runner,
    stall_timeout,
    overwrite,
    address,
) -> None:
    """Label Parquet files with a bundle (Ray Data); every input row appears once in OUTPUT.

    \b
    Example:
      textclf label models/rt data/rt/test labeled/rt-test --probabilities
    """
    from textclf.labeling.config import LabelConfig
    from textclf.labeling.pipeline import label as run_labeling

    config = LabelConfig(
        text_column=text_column,
        id_column=id_column,
        probabilities=probabilities,
        top_k=top_k,
        threshold=threshold,
        format=fmt,
        keep_columns=tuple(c for c in keep_columns.split(",") if c),
        concurrency=concurrency,
        use_gpu=use_gpu,
        batch_tokens=batch_tokens,
        precision=precision,
        stall_timeout_s=stall_timeout,
        runner=runner,
    )
    manifest = run_labeling(model_dir, input_spec, output, config, overwrite=overwrite, address=address)
    if manifest.get("already_complete"):
        click.echo(f"{output} already holds this finished run; nothing to do (--overwrite starts over)")
    click.echo(
        f"{manifest['rows_in']:,} rows in {len(manifest['inputs'])} file(s): {manifest['rows_labeled']:,} "
        f"labeled, {manifest['rows_error']:,} with an error; manifest: {Path(output) / '_manifest.json'}"
    )


def main() -> None:
    """The `textclf` console script."""
    cli()


if __name__ == "__main__":
    main()
