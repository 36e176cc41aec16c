"""Options of `textclf label`: one frozen dataclass, checked where it is built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from textclf.errors import DataError
from textclf.inference.selection import check_selection
from textclf.runtime.precision import SCORING_PRECISIONS, check_precision

FORMATS = ("parquet", "arrow")
RUNNERS = ("auto", "ray", "in-process")
# the options that shape the output; the others (speed, placement) may change on a rerun
OUTPUT_OPTIONS = (
    "text_column",
    "id_column",
    "keep_columns",
    "probabilities",
    "top_k",
    "threshold",
    "format",
    "precision",
)


@dataclass(frozen=True)
class LabelConfig:
    text_column: str = "text"
    id_column: str = "id"
    keep_columns: tuple[str, ...] = ()
    probabilities: bool = False  # add `scores` (label name -> probability) and `probs` (a list, order in metadata)
    # with threshold: add `labels` / `confidences`, the chosen labels most probable first. None: the model's
    # default, one label, or for a multi-label model every label at or above its tuned threshold
    top_k: int | None = None
    threshold: float | None = None
    format: str = "parquet"
    concurrency: int | None = None  # inference actors; None: one per GPU, or one per CPU core
    use_gpu: bool = False
    batch_tokens: int | None = None  # None: the device's default (textclf.inference.predictor.inference_batching)
    precision: str = "auto"  # textclf.runtime.precision
    stall_timeout_s: float = 900.0  # no labeled rows for this long: an actor is hung, fail the run
    # ray: Ray Data's actor pool; in-process: this process alone, no Ray; auto: in-process when the input
    # is small enough that a local Ray's start-up would not pay back (textclf.labeling.pipeline)
    runner: str = "auto"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise DataError(f"--format must be parquet or arrow, got {self.format!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise DataError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.batch_tokens is not None and self.batch_tokens < 1:
            raise DataError(f"--batch-tokens must be >= 1, got {self.batch_tokens}")
        check_precision(self.precision, SCORING_PRECISIONS)
        if self.precision == "int8" and self.use_gpu:
            raise DataError("--precision int8 is for scoring on CPU; use auto, bf16 or fp32 with --use-gpu")
        check_selection(self.top_k, self.threshold)
        if self.runner not in RUNNERS:
            raise DataError(f"--runner must be one of {', '.join(RUNNERS)}, got {self.runner!r}")
        if self.stall_timeout_s <= 0:
            raise DataError(f"--stall-timeout must be > 0, got {self.stall_timeout_s}")

    def output_options(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k in OUTPUT_OPTIONS}


LABEL_DEFAULTS = {f.name: f.default for f in fields(LabelConfig)}  # what `textclf label --help` shows
