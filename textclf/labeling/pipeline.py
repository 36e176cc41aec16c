"""`textclf label`: bulk offline labeling of Parquet corpora with Ray Data.

Flow: input files (sorted, row counts from footers) -> Ray Data reads each file in chunks in CPU tasks,
adding its path, row numbers and ids -> an actor pool loads the bundle once per actor and labels
batches -> the driver hands each input's rows to the output protocol (textclf.labeling.output), which
commits an input's file once every row of it has arrived and writes the manifest last.

A small input (`--runner auto`) skips Ray: the same reading, labeling and output protocol run in this
process, with encoding processes tokenizing ahead of it, since a local Ray's start-up would take longer
than the labeling.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from textclf import errors
from textclf.bundle import read_bundle_meta
from textclf.errors import DataError, TextclfError
from textclf.labeling.config import LabelConfig
from textclf.labeling.inputs import InputFile, discover_inputs
from textclf.labeling.output import (
    MANIFEST,
    FileState,
    RunStats,
    append_rows,
    commit_empty,
    discard_uncommitted,
    file_metadata,
    locked,
    output_name,
    prepare_output,
    write_manifest,
)
from textclf.runtime.faults import worker_env
from textclf.runtime.precision import check_local_precision
from textclf.runtime.progress import Progress
from textclf.storage import Folder, is_uri

READ_ROWS = 4096  # rows per chunk read from an input file
CPU_CALLS_IN_FLIGHT = 2  # calls queued at a CPU inference actor, the one it runs included
INFER_ROWS = 4096  # most rows per inference call: sorted by length inside; larger pads less, smaller streams better
# Ray Data merges a task's output up to this size; small enough that a big input file streams through
# in pieces (memory stays flat as files grow), large enough that per-block overhead stays negligible
BLOCK_BYTES = 16 * 1024 * 1024
# What `--runner auto` weighs a run with (docs/performance.md): documents a second one process labels on
# the mixed-length benchmark corpus (1-8 review snippets each), float32, on a 2-core AVX2 machine; and the
# seconds a local Ray session adds to a labeling command (start-up, actors, shutdown).
IN_PROCESS_DOCS_PER_S = {"bow": 8000, "mlp": 8000, "cnn": 800, "bilstm": 100, "transformer": 7}
LOCAL_RAY_START_S = 10.0
# Architectures whose model costs less than encoding the text (bow: a fifth of it on 300,000 documents):
# labeling them in-process, the encoding processes get the cores and torch what is left.
ENCODING_BOUND_ARCHS = frozenset({"bow"})
# Rows from which such a model's input is encoded by one process per core: each extra process costs
# about a core-second to start (spaCy), which 30,000 rows did not pay back on 2 cores and 300,000 did.
PARALLEL_ENCODING_ROWS = 100_000


def label(
    model_dir: str,
    input_spec: str,
    output: str,
    config: LabelConfig | None = None,
    overwrite: bool = False,
    address: str | None = None,
) -> dict:
    config = config or LabelConfig()
    meta = read_bundle_meta(model_dir)  # a folder that is not a bundle fails here, before anything
    check_local_precision(config.precision, config.use_gpu, address)
    out = Folder(output)
    filesystem, inputs = discover_inputs(input_spec, exclude=out.root)
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
    with locked(out):
        try:
            if prepare_output(out, run, overwrite):
                return {**json.loads(out.read_text(MANIFEST)), "already_complete": True}
        except OSError as e:
            raise DataError(f"cannot write to OUTPUT {out}: {e.strerror or e}") from None
        _check_columns(filesystem, inputs, config)
        states = [
            FileState(i, f, output_name(i, f.path, config.format), np.zeros(f.rows or 0, bool))
            for i, f in enumerate(inputs)
        ]
        present = set(out.names())
        pending = [s for s in states if s.source.error is None and s.output not in present]
        started, stats = time.monotonic(), RunStats()
        metadata = file_metadata(meta["weights_sha256"])
        for state in [s for s in pending if s.source.rows == 0]:
            commit_empty(state, filesystem, out, config, meta["labels"], metadata, meta.get("multi_label", False))
            pending.remove(state)
        try:
            if pending and _runs_in_process(config, meta["arch"], sum(s.source.rows for s in pending), address):
                stats.runner = "in-process"
                _run_in_process(model_dir, meta["arch"], filesystem, pending, out, config, stats, metadata)
            elif pending:
                stats.runner = "ray"
                _run_pipeline(model_dir, filesystem, pending, out, config, address, stats, metadata)
            rows_done = sum(s.done for s in pending)
            return write_manifest(out, run, states, rows_done, stats, time.monotonic() - started)
        except OSError as e:  # disk full, permissions changed under us, a storage outage
            raise TextclfError(
                f"cannot write to OUTPUT {out}: {e.strerror or e}; "
                "partial files were removed, rerun the same command to resume"
            ) from None
        finally:
            discard_uncommitted(pending)


def _runs_in_process(config: LabelConfig, arch: str, rows: int, address: str | None) -> bool:
    """`--runner auto`: in-process when this process alone would finish before a local Ray session
    started for the command: rows / rate <= start-up + rows / (rate * (cores - 1)). Ray's pool labels at
    most cores - 1 times one process's rate, as the driver's reading and writing and Ray's own processes
    take about a core: on 2 cores its 2 actors labeled bow at 1.15x and bilstm at 0.77x of one process
    using both cores, so there it never pays back. A cluster (--address), a Ray already running here,
    GPUs or a chosen --concurrency mean Ray."""
    if config.runner != "auto":
        return config.runner == "in-process"
    ray = sys.modules.get("ray")  # imported only if something here already uses Ray
    if address or os.environ.get("RAY_ADDRESS") or config.use_gpu or config.concurrency:
        return False
    if ray is not None and ray.is_initialized():
        return False
    parallel = len(os.sched_getaffinity(0)) - 1
    if parallel <= 1:
        return True
    rate = IN_PROCESS_DOCS_PER_S.get(arch, min(IN_PROCESS_DOCS_PER_S.values()))
    return rows <= LOCAL_RAY_START_S * rate * parallel / (parallel - 1)


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
    pending: list[FileState],
    out: Folder,
    config: LabelConfig,
    address: str | None,
    stats: RunStats,
    metadata: dict[bytes, bytes],
) -> None:
    from textclf.labeling.labeler import BatchLabeler, encode_texts
    from textclf.runtime.ray_session import ray_session
    from textclf.runtime.stderr_filter import RAY_53727, without_stderr_lines

    by_index = {s.index: s for s in pending}
    # local Ray: a CPU beyond the actors' own, or actors holding every CPU starve the reading tasks
    session = ray_session(address, num_cpus=max(os.cpu_count() or 1, config.concurrency or 1) + 1, dashboard=False)
    with without_stderr_lines(RAY_53727), session:  # Ray's processes have ended when the filter ends
        import ray.data  # after the session sets Ray Data's log level

        context = ray.data.DataContext.get_current()
        context.target_max_block_size = BLOCK_BYTES
        # blocks go out only once every actor is up: the first actor up would otherwise take the first
        # calls (it holds two) while the others start, and with few blocks the others stay idle
        context.wait_for_min_actors_s = max(1, round(config.stall_timeout_s))
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
        model_dir = model_dir if is_uri(model_dir) else str(Path(model_dir).resolve())
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
        # while it runs one, so its next block is already there when it finishes, not fetched after.
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
                top_k=config.top_k,
                threshold=config.threshold,
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
        progress = Progress("label", sum(s.source.rows for s in pending))
        batches = _with_actor_errors(labeled.iter_batches(batch_format="pyarrow", batch_size=None))
        for batch in _with_stall_timeout(batches, config.stall_timeout_s):
            _deliver(batch, by_index, out, config, metadata, stats, progress)
        progress.close()
        stats.labeling_s = time.monotonic() - progress.started
    _check_complete(pending)


def _run_in_process(
    model_dir: str,
    arch: str,
    filesystem,
    pending: list[FileState],
    out: Folder,
    config: LabelConfig,
    stats: RunStats,
    metadata: dict[bytes, bytes],
) -> None:
    """The same labeling without Ray, for inputs small enough that Ray's start-up would not pay back:
    this process reads, runs the model (torch uses the cores left) and writes, while encoding
    processes (textclf.labeling.encoders) tokenize the chunks ahead of it."""
    from textclf.labeling.encoders import encoded_in_order, encoding_processes
    from textclf.labeling.labeler import BatchLabeler

    files = pa.table({"index": [s.index for s in pending], "path": [s.source.path for s in pending]})
    chunks = read_files(files, filesystem, config.text_column, config.id_column, list(config.keep_columns))
    chunks = joined_up_to(chunks, READ_ROWS)
    cores = len(os.sched_getaffinity(0))
    rows = sum(s.source.rows for s in pending)
    encoding_bound = arch in ENCODING_BOUND_ARCHS and not config.use_gpu
    processes = cores if encoding_bound and rows >= PARALLEL_ENCODING_ROWS else 1
    with encoding_processes(model_dir, processes) as pool:
        encoded = encoded_in_order(pool, chunks, model_dir, processes)  # started before torch loads
        labeler = BatchLabeler(
            model_dir,
            keep_columns=["_file", "_row", *config.keep_columns],
            probabilities=config.probabilities,
            top_k=config.top_k,
            threshold=config.threshold,
            device="cuda" if config.use_gpu else "cpu",
            batch_tokens=config.batch_tokens,
            precision=config.precision,
        )
        by_index = {s.index: s for s in pending}
        progress = Progress("label", rows)
        with _torch_threads(max(1, cores - processes) if encoding_bound else None):
            for batch in encoded:
                _deliver(labeler(batch), by_index, out, config, metadata, stats, progress)
    progress.close()
    stats.labeling_s = time.monotonic() - progress.started
    _check_complete(pending)


def joined_up_to(chunks: Iterator[pa.Table], rows: int) -> Iterator[pa.Table]:
    """Consecutive chunks joined until they hold `rows` rows (those of different schemas apart), so that
    many small files are bucketed together as Ray's repartitioning does: 2,000 documents in 6 files were
    six calls that padded a transformer's word pieces to 0.90 efficiency."""
    held: list[pa.Table] = []
    for chunk in chunks:
        if held and chunk.schema != held[0].schema:
            yield pa.concat_tables(held)
            held = []
        held.append(chunk)
        if sum(t.num_rows for t in held) >= rows:
            yield pa.concat_tables(held)
            held = []
    if held:
        yield pa.concat_tables(held)


@contextlib.contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """Torch's threads set to `threads` (None: left alone), and restored after. An encoding-bound model
    on 2 cores took 0.88x the time on one thread as on two fighting the encoding process for a core;
    the BiLSTM took 1.6x as long on one."""
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _deliver(
    batch: pa.Table,
    by_index: dict[int, FileState],
    out: Folder,
    config: LabelConfig,
    metadata: dict[bytes, bytes],
    stats: RunStats,
    progress: Progress,
) -> None:
    """Hand a labeled batch's rows to their inputs' output files; count its tokens and rows."""
    from textclf.labeling.labeler import STATS

    padding = stats.padding
    padding.real_tokens += pc.sum(batch["_real_tokens"]).as_py() or 0
    padding.padded_tokens += pc.sum(batch["_padded_tokens"]).as_py() or 0
    calls = batch.select(["_node", "_rows"]).filter(pc.is_valid(batch["_node"]))
    for node, rows in zip(calls["_node"].to_pylist(), calls["_rows"].to_pylist()):
        stats.rows_per_node[node] = stats.rows_per_node.get(node, 0) + rows
    batch = batch.drop_columns(list(STATS))
    for file_index in np.unique(batch["_file"].to_numpy()):
        part = batch.filter(pc.equal(batch["_file"], int(file_index)))
        append_rows(by_index[int(file_index)], part, out, config, metadata)
    elapsed = time.monotonic() - progress.started
    progress.update(
        batch.num_rows,
        tokens=padding.real_tokens,
        tokens_per_s=round(padding.real_tokens / elapsed) if elapsed else 0,
        padding_efficiency=padding.efficiency,
    )


def _check_complete(pending: list[FileState]) -> None:
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
    import ray.exceptions

    try:
        yield from batches
    except ray.exceptions.GetTimeoutError:  # the actor pool did not come up: wait_for_min_actors_s
        raise TextclfError(
            "the inference actors did not all start within --stall-timeout: the cluster has fewer free "
            "CPUs or GPUs than --concurrency asks for"
        ) from None
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
