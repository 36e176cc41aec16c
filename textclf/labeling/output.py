"""The labeled OUTPUT's protocol, Ray-free: one run at a time (a lock), the same run or none (`_run.json`),
each input's rows streamed into a hidden temporary file and renamed into place when all are in (the
commit: an output appears whole or not at all, and a rerun redoes only what was not committed), and the
manifest written last, with `_SUCCESS` when every input was read.
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
from textclf.files import TMP_PREFIX, temporary_sibling, write_atomically
from textclf.inference.selection import selects
from textclf.labeling.config import LabelConfig
from textclf.labeling.inputs import InputFile
from textclf.runtime.faults import fault
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
    writer: object = None
    done: int = 0
    failed: str | None = None


@dataclass
class RunStats:
    """What this run measured, for the manifest."""

    padding: PaddingStats = field(default_factory=PaddingStats)
    labeling_s: float = 0.0  # from the pipeline's start (Ray up) to its last row: the progress bar's clock
    rows_per_node: dict[str, int] = field(default_factory=dict)  # labeled by the actors of each Ray node


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
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


def discard_uncommitted(states: list[FileState]) -> None:
    """A run that stops early leaves committed outputs only; a rerun redoes the rest."""
    for state in states:
        if state.writer is not None and state.done != state.source.rows:
            with contextlib.suppress(Exception):
                state.writer.close()
            with contextlib.suppress(FileNotFoundError):
                os.unlink(state.tmp)
            state.writer = None


def prepare_output(out: Path, run: dict, overwrite: bool) -> bool:
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
    state: FileState, part: pa.Table, out: Path, config: LabelConfig, metadata: dict[bytes, bytes] | None = None
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
        state.tmp = str(temporary_sibling(out / state.output))
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


def commit_empty(
    state: FileState,
    filesystem,
    out: Path,
    config: LabelConfig,
    labels: list[str],
    metadata: dict[bytes, bytes] | None = None,
) -> None:
    """An input with no rows still gets its (empty) output, so every input maps to an output."""
    from textclf.labeling.labeler import output_schema

    with filesystem.open_input_file(state.source.path) as handle:
        input_schema = pq.ParquetFile(handle).schema_arrow
    kept = [input_schema.field(c) for c in config.keep_columns]
    schema = output_schema(labels, config.probabilities, kept, selects(config.top_k, config.threshold))
    schema = schema.with_metadata({**(schema.metadata or {}), **(metadata or {})})

    def write(tmp: Path) -> None:
        if config.format == "parquet":
            pq.write_table(schema.empty_table(), tmp)
        else:
            with pa.ipc.new_file(str(tmp), schema) as writer:
                writer.write_table(schema.empty_table())

    write_atomically(out / state.output, write)


def _pause_after_commit(out: Path) -> None:
    """Fault `pause_after_commits=N`: stop still after the Nth commit, for a test to kill the run there."""
    after = fault("pause_after_commits")
    if after is not None and len(list(out.glob("part-*"))) >= int(after):
        print("paused", flush=True)
        time.sleep(24 * 3600)


def write_manifest(
    out: Path, run: dict, states: list[FileState], rows_done: int, stats: RunStats, elapsed: float
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
        "rows_per_node": stats.rows_per_node,
    }
    write_atomically(out / MANIFEST, lambda tmp: tmp.write_text(json.dumps(manifest, indent=1)))
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
