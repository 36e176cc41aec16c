"""The labeled OUTPUT's protocol, Ray-free: one run at a time (a lock, on local disks), the same run or
none (`_run.json`), each input's rows streamed into a hidden temporary file and moved into place when all
are in (the commit: an output appears whole or not at all, and a rerun redoes only what was not
committed), and the manifest written last, with `_SUCCESS` when every input was read. OUTPUT is a local
folder or one on any filesystem pyarrow reaches (textclf.storage.Folder).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from textclf import __version__
from textclf.errors import DataError, PartialFailure
from textclf.inference.selection import selects
from textclf.labeling.config import LabelConfig
from textclf.labeling.inputs import InputFile
from textclf.runtime.faults import fault
from textclf.storage import Folder, is_temporary
from textclf.text.batching import PaddingStats

RUN, MANIFEST, SUCCESS = "_run.json", "_manifest.json", "_SUCCESS"
LOCK = ".lock"  # held (flock) by the run writing OUTPUT; the kernel drops it when that process dies


@dataclass
class FileState:
    """One input being written: rows seen (to drop a retried batch's duplicates) and its writer."""

    index: int
    source: InputFile
    output: str
    seen: np.ndarray
    tmp: str | None = None
    out: Folder | None = None
    sink: object = None  # the temporary file's stream
    writer: object = None
    done: int = 0
    failed: str | None = None


@dataclass
class RunStats:
    """What this run measured, for the manifest."""

    padding: PaddingStats = field(default_factory=PaddingStats)
    labeling_s: float = 0.0  # from the pipeline's start (Ray up) to its last row: the progress bar's clock
    rows_per_node: dict[str, int] = field(default_factory=dict)  # labeled by the actors of each Ray node
    runner: str | None = None  # "ray" or "in-process"; None when nothing was left to label


@contextlib.contextmanager
def locked(out: Folder) -> Iterator[None]:
    """Hold OUTPUT's lock for the run, so a second run on the same OUTPUT is refused, not interleaved.
    Object stores have no lock: there, one run at a time per OUTPUT is the user's to keep."""
    try:
        out.mkdir()
        handle = open(out.path(LOCK), "a") if out.local else contextlib.nullcontext()
    except OSError as e:
        raise DataError(f"cannot write to OUTPUT {out}: {e.strerror or e}") from None
    with handle:
        try:
            if out.local:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataError(
                f"OUTPUT {out} is in use by another textclf label run; wait for it to finish or use another OUTPUT"
            ) from None
        yield


def discard_uncommitted(states: list[FileState]) -> None:
    """A run that stops early leaves committed outputs only; a rerun redoes the rest."""
    for state in states:
        if state.writer is not None and state.done != state.source.rows:
            with contextlib.suppress(Exception):
                state.writer.close()
                state.sink.close()
            with contextlib.suppress(Exception):
                state.out.fs.delete_file(state.tmp)
            state.writer = None


def prepare_output(out: Folder, run: dict, overwrite: bool) -> bool:
    """Create or check OUTPUT; True when it already holds this exact finished run."""
    names = out.names()
    for name in names:
        if (overwrite and name != LOCK) or is_temporary(name):  # temporaries: left by a killed run
            out.delete(name)
    names = out.names()
    if RUN in names:
        previous = json.loads(out.read_text(RUN))
        if previous != run:
            raise DataError(
                f"OUTPUT {out} holds a run with a different {_difference(previous, run)}; "
                "use another OUTPUT or --overwrite"
            )
        if SUCCESS in names:
            return True
    elif any(name != LOCK for name in names):
        raise DataError(f"OUTPUT {out} is not empty and holds no textclf run; use another OUTPUT or --overwrite")
    out.write_text(RUN, json.dumps(run, indent=1))
    out.delete(MANIFEST)
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


def output_name(index: int, path: str, fmt: str) -> str:
    stem = Path(path).name.rsplit(".", 1)[0]
    return f"part-{index:05d}-{stem}.{'parquet' if fmt == 'parquet' else 'arrow'}"


def file_metadata(model_sha256: str) -> dict[bytes, bytes]:
    """Schema metadata of every output file, so a file copied elsewhere still says what made it."""
    return {
        b"textclf.version": __version__.encode(),
        b"textclf.model_sha256": model_sha256.encode(),
        b"textclf.created": utc_now().encode(),
    }


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def append_rows(
    state: FileState, part: pa.Table, out: Folder, config: LabelConfig, metadata: dict[bytes, bytes] | None = None
) -> None:
    rows = part["_row"].to_numpy()
    fresh = ~state.seen[rows]
    if not fresh.all():  # a retried batch: keep each row once
        part, rows = part.filter(pa.array(fresh)), rows[fresh]
    state.seen[rows] = True
    table = part.drop_columns(["_file", "_row"])
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    if state.writer is None:
        state.tmp, state.out = out.temporary(state.output), out
        state.sink = out.open_output(state.tmp)
        state.writer = (
            pq.ParquetWriter(state.sink, table.schema)
            if config.format == "parquet"
            else pa.ipc.new_file(state.sink, table.schema)
        )
    if fault("disk_full") is not None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    state.writer.write_table(table) if config.format == "parquet" else state.writer.write(table)
    state.done += table.num_rows
    if fault("crash_mid_write") is not None:
        os.kill(os.getpid(), signal.SIGKILL)  # as a power cut would: rows on disk, the file not closed
    if state.done == state.source.rows:
        state.writer.close()
        state.sink.close()
        out.move_into_place(state.tmp, state.output)  # the commit: the output appears whole or not at all
        _pause_after_commit(out)


def commit_empty(
    state: FileState,
    filesystem,
    out: Folder,
    config: LabelConfig,
    labels: list[str],
    metadata: dict[bytes, bytes] | None = None,
    multi_label: bool = False,
) -> None:
    """An input with no rows still gets its (empty) output, so every input maps to an output."""
    from textclf.labeling.labeler import output_schema

    with filesystem.open_input_file(state.source.path) as handle:
        input_schema = pq.ParquetFile(handle).schema_arrow
    kept = [input_schema.field(c) for c in config.keep_columns]
    schema = output_schema(labels, config.probabilities, kept, selects(config.top_k, config.threshold, multi_label))
    schema = schema.with_metadata({**(schema.metadata or {}), **(metadata or {})})

    tmp = out.temporary(state.output)
    with out.open_output(tmp) as sink:
        if config.format == "parquet":
            pq.write_table(schema.empty_table(), sink)
        else:
            with pa.ipc.new_file(sink, schema) as writer:
                writer.write_table(schema.empty_table())
    out.move_into_place(tmp, state.output)


def _pause_after_commit(out: Folder) -> None:
    """Fault `pause_after_commits=N`: stop still after the Nth commit, for a test to kill the run there."""
    after = fault("pause_after_commits")
    if after is not None and len([n for n in out.names() if n.startswith("part-")]) >= int(after):
        print("paused", flush=True)
        time.sleep(24 * 3600)


def write_manifest(
    out: Folder, run: dict, states: list[FileState], rows_done: int, stats: RunStats, elapsed: float
) -> dict:
    padding = stats.padding
    inputs, failed = [], []
    rows_labeled = rows_error = 0
    present = set(out.names())
    for s in states:
        committed = s.output in present
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
            errors = _read_output(out, s.output).column("error")
            n_err = len(errors) - errors.null_count
            rows_error += n_err
            rows_labeled += len(errors) - n_err
    rows_in = sum(s.source.rows or 0 for s in states)
    manifest = {
        "textclf_version": __version__,
        "created": utc_now(),
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
        "runner": stats.runner,
        "rows_per_node": stats.rows_per_node,
    }
    out.write_text(MANIFEST, json.dumps(manifest, indent=1))
    if not failed:
        out.write_text(SUCCESS, json.dumps(manifest, indent=1))
    else:
        raise PartialFailure(f"{len(failed)} input file(s) could not be labeled; see {out.path(MANIFEST)}")
    return manifest


def _read_output(out: Folder, name: str) -> pa.Table:
    with out.open_input(name) as f:
        return pq.read_table(f) if name.endswith(".parquet") else pa.ipc.open_file(f).read_all()
