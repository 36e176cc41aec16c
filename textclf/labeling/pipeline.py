"""`textclf label`: bulk offline labeling of Parquet corpora with Ray Data.

Flow: input files (sorted, row counts from footers) -> Ray Data reads each file in chunks in CPU tasks,
adding its path, row numbers and ids -> an actor pool loads the bundle once per actor and labels
batches -> the driver streams each input's rows into a temporary file under OUTPUT and renames it
into place once every row of that input has arrived. A committed output is never rewritten, so a
rerun after a crash only does the inputs that were not committed. `_manifest.json` is written last.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import queue
import re
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textclf import errors
from textclf.bundle import read_bundle_meta
from textclf.errors import DataError, PartialFailure, TextclfError
from textclf.labeling.inputs import InputFile, discover_inputs
from textclf.runtime.faults import fault, worker_env
from textclf.runtime.precision import check_local_precision, check_precision
from textclf.runtime.progress import Progress
from textclf.text.batching import PaddingStats

RUN, MANIFEST, SUCCESS = "_run.json", "_manifest.json", "_SUCCESS"
LOCK = ".lock"  # held (flock) by the run writing OUTPUT; the kernel drops it when that process dies
TMP_PREFIX = ".tmp-"  # hidden, so readers of OUTPUT (pyarrow datasets, Spark) skip unfinished files
READ_ROWS = 4096  # rows per chunk read from an input file
CPU_CALLS_IN_FLIGHT = 2  # calls queued at a CPU inference actor, the one it runs included
INFER_ROWS = 4096  # most rows per inference call: sorted by length inside; larger pads less, smaller streams better
# Ray Data merges a task's output up to this size; small enough that a big input file streams through
# in pieces (memory stays flat as files grow), large enough that per-block overhead stays negligible
BLOCK_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class LabelConfig:
    text_column: str = "text"
    id_column: str = "id"
    keep_columns: tuple[str, ...] = ()
    probabilities: bool = False
    format: str = "parquet"
    concurrency: int | None = None  # inference actors; None: one per GPU, or one per CPU core
    use_gpu: bool = False
    batch_tokens: int | None = None  # None: the device's default (textclf.inference.predictor.inference_batching)
    precision: str = "auto"  # textclf.runtime.precision
    stall_timeout_s: float = 900.0  # no labeled rows for this long: an actor is hung, fail the run

    def __post_init__(self) -> None:
        if self.format not in ("parquet", "arrow"):
            raise DataError(f"--format must be parquet or arrow, got {self.format!r}")
        if self.concurrency is not None and self.concurrency < 1:
            raise DataError(f"--concurrency must be >= 1, got {self.concurrency}")
        if self.batch_tokens is not None and self.batch_tokens < 1:
            raise DataError(f"--batch-tokens must be >= 1, got {self.batch_tokens}")
        check_precision(self.precision)
        if self.stall_timeout_s <= 0:
            raise DataError(f"--stall-timeout must be > 0, got {self.stall_timeout_s}")

    def output_options(self) -> dict:
        """The options that shape the output; the others (speed, placement) may change on a rerun."""
        return {
            k: v
            for k, v in asdict(self).items()
            if k in ("text_column", "id_column", "keep_columns", "probabilities", "format", "precision")
        }


@dataclass
class _FileState:
    """One input being written: rows seen (to drop a retried batch's duplicates) and its writer."""

    index: int
    source: InputFile
    output: str
    seen: np.ndarray
    tmp: str | None = None
    writer: object = None
    done: int = 0
    failed: str | None = None


@dataclass
class _RunStats:
    """What this run measured, for the manifest."""

    padding: PaddingStats = field(default_factory=PaddingStats)
    labeling_s: float = 0.0  # from the pipeline's start (Ray up) to its last row: the progress bar's clock
    rows_per_node: dict[str, int] = field(default_factory=dict)  # labeled by the actors of each Ray node


def label(
    model_dir: str,
    input_spec: str,
    output: str,
    config: LabelConfig = LabelConfig(),
    overwrite: bool = False,
    address: str | None = None,
) -> dict:
    meta = read_bundle_meta(model_dir)  # a folder that is not a bundle fails here, before anything
    check_local_precision(config.precision, config.use_gpu, address)
    out = Path(output)
    filesystem, inputs = discover_inputs(input_spec, exclude=str(out.resolve()))
    # what makes a run the same run; through JSON so it compares equal to the stored copy
    run = json.loads(
        json.dumps(
            {
                "model_sha256": meta["weights_sha256"],
                "input": input_spec,
                "inputs": [f.path for f in inputs],
                "config": config.output_options(),
            }
        )
    )
    with _locked(out):
        try:
            if _prepare_output(out, run, overwrite):
                return {**json.loads((out / MANIFEST).read_text()), "already_complete": True}
        except OSError as e:
            raise DataError(f"cannot write to OUTPUT {out}: {e.strerror or e}") from None
        _check_columns(filesystem, inputs, config)
        states = [
            _FileState(i, f, _output_name(i, f.path, config.format), np.zeros(f.rows or 0, bool))
            for i, f in enumerate(inputs)
        ]
        pending = [s for s in states if s.source.error is None and not (out / s.output).exists()]
        started, stats = time.monotonic(), _RunStats()
        for state in [s for s in pending if s.source.rows == 0]:
            _commit_empty(state, filesystem, out, config, meta["labels"])
            pending.remove(state)
        try:
            if pending:
                _run_pipeline(model_dir, filesystem, pending, out, config, address, stats)
            rows_done = sum(s.done for s in pending)
            return _write_manifest(out, run, states, rows_done, stats, time.monotonic() - started)
        except OSError as e:  # disk full, permissions changed under us, a storage outage
            raise TextclfError(
                f"cannot write to OUTPUT {out}: {e.strerror or e}; "
                "partial files were removed, rerun the same command to resume"
            ) from None
        finally:
            _discard_uncommitted(pending)


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold OUTPUT's lock for the run, so a second run on the same OUTPUT is refused, not interleaved."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        handle = open(out / LOCK, "a")
    except OSError as e:
        raise DataError(f"cannot write to OUTPUT {out}: {e.strerror or e}") from None
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"OUTPUT {out} is in use by another textclf label run; wait for it to finish or use another OUTPUT"
            ) from None
        yield


def _discard_uncommitted(states: list[_FileState]) -> None:
    """A run that stops early leaves committed outputs only; a rerun redoes the rest."""
    for state in states:
        if state.writer is not None and state.done != state.source.rows:
            with contextlib.suppress(Exception):
                state.writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state.tmp)
            state.writer = None


def _prepare_output(out: Path, run: dict, overwrite: bool) -> bool:
    """Create or check OUTPUT; True when it already holds this exact finished run."""
    if overwrite and out.exists():
        for child in out.iterdir():
            if child.is_file() and child.name != LOCK:
                child.unlink()
    for stray in out.glob(TMP_PREFIX + "*"):  # left by a run that was killed mid-write
        stray.unlink()
    run_file = out / RUN
    if run_file.exists():
        previous = json.loads(run_file.read_text())
        if previous != run:
            raise DataError(
                f"OUTPUT {out} holds a run with a different {_difference(previous, run)}; "
                "use another OUTPUT or --overwrite"
            )
        if (out / SUCCESS).exists():
            return True
    elif any(child.name != LOCK for child in out.iterdir()):
        raise DataError(f"OUTPUT {out} is not empty and holds no textclf run; use another OUTPUT or --overwrite")
    run_file.write_text(json.dumps(run, indent=1))
    (out / MANIFEST).unlink(missing_ok=True)
    return False


def _difference(previous: dict, run: dict) -> str:
    """What sets two runs apart, as the user would name it."""
    if previous.get("model_sha256") != run["model_sha256"]:
        return "model"
    before, now = previous.get("config", {}), run["config"]
    options = [name for name in now if before.get(name) != now[name]]
    if options:
        return (
            "--"
            + ", --".join(name.replace("_", "-") for name in options)
            + (f" (was {', '.join(repr(before.get(name)) for name in options)})")
        )
    return "input (other files)"


def _check_columns(filesystem, inputs: list[InputFile], config: LabelConfig) -> None:
    """A file without the text column or a kept column fails by name; the others go on."""
    readable = [f for f in inputs if f.error is None]
    missing: dict[str, list[str]] = {}
    for f in readable:
        with filesystem.open_input_file(f.path) as handle:
            names = pq.ParquetFile(handle).schema_arrow.names
        lacking = [c for c in (config.text_column, *config.keep_columns) if c not in names]
        if lacking:
            missing[f.path] = lacking
    if readable and len(missing) == len(readable):
        first = next(iter(missing.values()))[0]
        hint = " (use --text-column)" if first == config.text_column else " (see --keep-columns)"
        raise DataError(f"INPUT has no column {first!r}{hint}")
    for i, f in enumerate(inputs):
        if f.path in missing:
            inputs[i] = InputFile(f.path, f.rows, "no column " + ", ".join(map(repr, missing[f.path])))


def _output_name(index: int, path: str, fmt: str) -> str:
    stem = Path(path).name.rsplit(".", 1)[0]
    return f"part-{index:05d}-{stem}.{'parquet' if fmt == 'parquet' else 'arrow'}"


def read_files(batch: pa.Table, filesystem, text_column: str, id_column: str, keep_columns: Sequence[str]):
    """CPU task: input files -> chunks with `_file`, `_row`, `id` (given or derived), `_text` (a string or
    null) with its `error`, kept columns.
    Streaming: a file is read a chunk at a time, never whole."""
    from textclf.labeling.labeler import check_texts

    for index, path in zip(batch["index"].to_pylist(), batch["path"].to_pylist()):
        with filesystem.open_input_file(path) as handle:
            parquet = pq.ParquetFile(handle)
            has_id = id_column in parquet.schema_arrow.names
            columns = list(dict.fromkeys([text_column, *([id_column] if has_id else []), *keep_columns]))
            start = 0
            for chunk in parquet.iter_batches(batch_size=READ_ROWS, columns=columns):
                rows = np.arange(start, start + chunk.num_rows, dtype=np.int64)
                start += chunk.num_rows
                derived = pa.array([f"{path}:{r}" for r in rows], pa.string())
                # ids of any type become strings; a null id is replaced by the derived one, never kept null
                ids = pc.coalesce(chunk.column(id_column).cast(pa.string()), derived) if has_id else derived
                # `_text`, not the user's name, so keeping the text column itself does not collide
                table = {
                    "_file": pa.array(np.full(len(rows), index, np.int32)),
                    "_row": pa.array(rows),
                    "id": ids,
                    "_text": chunk.column(text_column),
                }
                for name in keep_columns:
                    table[name] = chunk.column(name)
                yield check_texts(pa.table(table), "_text")


def _run_pipeline(
    model_dir: str,
    filesystem,
    pending: list[_FileState],
    out: Path,
    config: LabelConfig,
    address: str | None,
    stats: _RunStats,
) -> None:
    from textclf.labeling.labeler import STATS, BatchLabeler, encode_texts
    from textclf.runtime.ray_session import ray_session
    from textclf.runtime.stderr_filter import RAY_53727, without_stderr_lines

    by_index = {s.index: s for s in pending}
    # local Ray: a CPU beyond the actors' own, or actors holding every CPU starve the reading tasks
    session = ray_session(address, num_cpus=max(os.cpu_count() or 1, config.concurrency or 1) + 1, dashboard=False)
    with without_stderr_lines(RAY_53727), session:  # Ray's processes have ended when the filter ends
        import ray.data  # after the session sets Ray Data's log level

        ray.data.DataContext.get_current().target_max_block_size = BLOCK_BYTES
        files = ray.data.from_items(
            [{"index": s.index, "path": s.source.path} for s in pending], override_num_blocks=len(pending)
        )
        chunks = files.map_batches(
            read_files,
            batch_size=1,
            batch_format="pyarrow",
            fn_kwargs=dict(
                filesystem=filesystem,
                text_column=config.text_column,
                id_column=config.id_column,
                keep_columns=list(config.keep_columns),
            ),
        )
        model_dir = str(Path(model_dir).resolve())
        if config.use_gpu:  # tokenizing stays on CPU tasks, so GPU actors only run the model
            chunks = chunks.map_batches(
                encode_texts, batch_format="pyarrow", fn_kwargs=dict(model_dir=model_dir, text_column="_text")
            )
        # CPU actors tokenize their own batches: one process per core does all the work, so tokenizing
        # runs on every core and no extra worker process has to start
        actors, per_node = _actor_layout(config)
        # one call per block, each block going to the actor with the fewest calls queued: inputs of any
        # size and layout spread evenly over the actors (a Ray Data task gets a whole block, so a 600-row
        # file was one task, labeled by one actor while the other idled). A CPU actor holds a second call
        # while it runs one, so its next block is already there when it finishes: with one, each call
        # waited about 0.17 s for the next, a sixth of a bow actor's time.
        size = call_rows(sum(s.source.rows for s in pending), actors)
        chunks = chunks.repartition(target_num_rows_per_block=size)
        labeled = chunks.map_batches(
            BatchLabeler,
            batch_format="pyarrow",
            batch_size=size,
            fn_constructor_kwargs=dict(
                model_dir=model_dir,
                keep_columns=["_file", "_row", *config.keep_columns],
                probabilities=config.probabilities,
                batch_tokens=config.batch_tokens,
                precision=config.precision,
                text_column=None if config.use_gpu else "_text",
                actors_per_node=None if config.use_gpu else per_node,
            ),
            compute=ray.data.ActorPoolStrategy(
                size=actors, max_tasks_in_flight_per_actor=None if config.use_gpu else CPU_CALLS_IN_FLIGHT
            ),
            num_gpus=1 if config.use_gpu else 0,
            runtime_env=worker_env(),
        )
        padding, rows_per_node = stats.padding, stats.rows_per_node
        progress = Progress("label", sum(s.source.rows for s in pending))
        batches = _with_actor_errors(labeled.iter_batches(batch_format="pyarrow", batch_size=None))
        for batch in _with_stall_timeout(batches, config.stall_timeout_s):
            padding.real_tokens += pc.sum(batch["_real_tokens"]).as_py() or 0
            padding.padded_tokens += pc.sum(batch["_padded_tokens"]).as_py() or 0
            calls = batch.select(["_node", "_rows"]).filter(pc.is_valid(batch["_node"]))
            for node, rows in zip(calls["_node"].to_pylist(), calls["_rows"].to_pylist()):
                rows_per_node[node] = rows_per_node.get(node, 0) + rows
            batch = batch.drop_columns(list(STATS))
            for file_index in np.unique(batch["_file"].to_numpy()):
                part = batch.filter(pc.equal(batch["_file"], int(file_index)))
                _append(by_index[int(file_index)], part, out, config)
            elapsed = time.monotonic() - progress.started
            progress.update(
                batch.num_rows,
                tokens=padding.real_tokens,
                tokens_per_s=round(padding.real_tokens / elapsed) if elapsed else 0,
                padding_efficiency=padding.efficiency,
            )
        progress.close()
        stats.labeling_s = time.monotonic() - progress.started
    for state in pending:  # an input that did not deliver every row is not committed
        if state.done != state.source.rows:
            state.failed = f"read stopped after {state.done} of {state.source.rows} rows"


def _actor_layout(config: LabelConfig) -> tuple[int, int]:
    """(inference actors, actors per node). By default one per GPU, or on CPU one per core less one
    per node, which is left to the reading and tokenizing tasks (local Ray counts one CPU extra)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    if config.concurrency:
        actors = config.concurrency
    elif config.use_gpu:
        actors = max(1, int(sum(n.get("GPU", 0) for n in nodes)))
    else:
        actors = max(1, int(sum(n.get("CPU", 0) for n in nodes)) - len(nodes))
    return actors, -(-actors // max(1, len(nodes)))


def call_rows(rows: int, actors: int) -> int:
    """Rows per inference call: at most INFER_ROWS, and cut so the calls share out evenly over the
    actors (30,000 rows of one file on two actors: 3,750 a call, where 4,096 would leave a last call of 1,328)."""
    rounds = -(-rows // (actors * INFER_ROWS))
    return max(1, -(-rows // (actors * max(1, rounds))))


def _with_actor_errors(batches: Iterator[pa.Table]) -> Iterator[pa.Table]:
    """A textclf error raised where an actor starts (an option or bundle its machine refuses) reaches
    the driver only as text inside Ray's ActorDiedError; raise it as itself, so it ends in one line."""
    try:
        yield from batches
    except Exception as e:
        cause: BaseException | None = e
        while cause is not None:
            found = re.search(r"textclf\.errors\.(\w+): (.+)", str(cause))
            kind = getattr(errors, found.group(1), None) if found else None
            if isinstance(kind, type) and issubclass(kind, TextclfError):
                raise kind(found.group(2).strip()) from None
            cause = cause.__cause__ or cause.__context__
        raise


def _with_stall_timeout(batches: Iterator[pa.Table], timeout_s: float) -> Iterator[pa.Table]:
    """Yield the batches, but fail when none arrives for `timeout_s`: a hung actor would otherwise
    block the run forever. Ray's iterator cannot be interrupted, so it runs in a thread."""
    handoff: queue.Queue = queue.Queue(maxsize=1)
    done = object()

    def pump() -> None:
        try:
            for batch in batches:
                handoff.put(batch)
            handoff.put(done)
        except BaseException as e:  # handed to the driver's thread, raised there
            handoff.put(e)

    threading.Thread(target=pump, name="label-batches", daemon=True).start()
    while True:
        try:
            item = handoff.get(timeout=timeout_s)
        except queue.Empty:
            raise TextclfError(
                f"labeling stalled: no rows labeled for {timeout_s:g} s (an inference actor may be "
                "hung); committed outputs are kept, rerun to resume or raise --stall-timeout"
            ) from None
        if item is done:
            return
        if isinstance(item, BaseException):
            raise item
        yield item


def _append(state: _FileState, part: pa.Table, out: Path, config: LabelConfig) -> None:
    rows = part["_row"].to_numpy()
    fresh = ~state.seen[rows]
    if not fresh.all():  # a retried batch: keep each row once
        part, rows = part.filter(pa.array(fresh)), rows[fresh]
    state.seen[rows] = True
    table = part.drop_columns(["_file", "_row"])
    if state.writer is None:
        state.tmp = str(out / f"{TMP_PREFIX}{uuid.uuid4().hex}-{state.output}")
        state.writer = (
            pq.ParquetWriter(state.tmp, table.schema)
            if config.format == "parquet"
            else pa.ipc.new_file(state.tmp, table.schema)
        )
    if fault("disk_full") is not None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    state.writer.write_table(table) if config.format == "parquet" else state.writer.write(table)
    state.done += table.num_rows
    if fault("crash_mid_write") is not None:
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would: rows on disk, the file not closed
    if state.done == state.source.rows:
        state.writer.close()
        os.replace(state.tmp, out / state.output)  # the commit: the output appears whole or not at all
        _pause_after_commit(out)


def _commit_empty(state: _FileState, filesystem, out: Path, config: LabelConfig, labels: list[str]) -> None:
    """An input with no rows still gets its (empty) output, so every input maps to an output."""
    from textclf.labeling.labeler import output_schema

    with filesystem.open_input_file(state.source.path) as handle:
        input_schema = pq.ParquetFile(handle).schema_arrow
    schema = output_schema(labels, config.probabilities, [input_schema.field(c) for c in config.keep_columns])
    tmp = out / f"{TMP_PREFIX}{uuid.uuid4().hex}-{state.output}"
    if config.format == "parquet":
        pq.write_table(schema.empty_table(), tmp)
    else:
        with pa.ipc.new_file(str(tmp), schema) as writer:
            writer.write_table(schema.empty_table())
    os.replace(tmp, out / state.output)


def _pause_after_commit(out: Path) -> None:
    """Fault `pause_after_commits=N`: stop still after the Nth commit, for a test to kill the run there."""
    after = fault("pause_after_commits")
    if after is not None and len(list(out.glob("part-*"))) >= int(after):
        print("paused", flush=True)
        time.sleep(24 * 3600)


def _write_manifest(
    out: Path, run: dict, states: list[_FileState], rows_done: int, stats: _RunStats, elapsed: float
) -> dict:
    padding = stats.padding
    inputs, failed = [], []
    rows_labeled = rows_error = 0
    for s in states:
        committed = (out / s.output).exists()
        error = s.source.error or s.failed or (None if committed else "not labeled")
        entry = {
            "path": s.source.path,
            "rows": s.source.rows,
            "output": s.output if committed else None,
            "error": error,
        }
        inputs.append(entry)
        if error:
            failed.append({"path": s.source.path, "error": error})
        elif committed:
            errors = _read_output(out / s.output).column("error")
            n_err = len(errors) - errors.null_count
            rows_error += n_err
            rows_labeled += len(errors) - n_err
    rows_in = sum(s.source.rows or 0 for s in states)
    manifest = {
        "model_sha256": run["model_sha256"],
        "input": run["input"],
        "inputs": inputs,
        "outputs": [e["output"] for e in inputs if e["output"]],
        "rows_in": rows_in,
        "rows_labeled": rows_labeled,
        "rows_error": rows_error,
        "failed_files": failed,
        "rows_this_run": rows_done,
        "elapsed_s": round(elapsed, 2),
        "labeling_s": round(stats.labeling_s, 2),
        # the rates the progress showed: over the labeling, Ray's start and the commits aside
        "docs_per_s": round(rows_done / stats.labeling_s, 1) if stats.labeling_s and rows_done else None,
        "tokens_per_s": (round(padding.real_tokens / stats.labeling_s, 1) if stats.labeling_s and rows_done else None),
        "padding_efficiency": round(padding.efficiency, 4) if rows_done else None,
        "rows_per_node": stats.rows_per_node,
    }
    tmp = out / (TMP_PREFIX + MANIFEST)
    tmp.write_text(json.dumps(manifest, indent=1))
    os.replace(tmp, out / MANIFEST)
    if not failed:
        (out / SUCCESS).write_text(json.dumps(manifest, indent=1))
    else:
        raise PartialFailure(f"{len(failed)} input file(s) could not be labeled; see {out / MANIFEST}")
    return manifest


def _read_output(path: Path) -> pa.Table:
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with pa.OSFile(str(path)) as f:
        return pa.ipc.open_file(f).read_all()
