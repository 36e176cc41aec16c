"""Encoding processes for the in-process runner: they tokenize and encode chunks while this process
runs the model and writes.

Encoding is Python (one core, the GIL held); a thread beside the model gained nothing on bow. Processes
started at once also load spaCy while this one loads torch and the bundle, which is most of a small
input's time (docs/performance.md).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from itertools import islice

import pyarrow as pa

from textclf.errors import TextclfError

CHUNKS_AHEAD_PER_PROCESS = 2  # enough to keep each process busy, few enough to bound memory
_PARENT_CHECK_S = 1.0


@contextlib.contextmanager
def encoding_processes(model_dir: str, processes: int) -> Iterator[ProcessPoolExecutor]:
    """A pool of `processes` fresh interpreters (spawned: this one may hold torch's threads), each
    loading the bundle's tokenizer as it starts. Outstanding work is dropped on the way out."""
    pool = ProcessPoolExecutor(
        max_workers=processes,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_encoder,
        initargs=(model_dir, os.getpid()),
    )
    try:
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def encoded_in_order(
    pool: ProcessPoolExecutor, chunks: Iterable[pa.Table], model_dir: str, processes: int
) -> Iterator[pa.Table]:
    """Each chunk with `_text` replaced by `_ids` (labeler.encode_texts), in the order read. The first
    chunks are handed out now, before the caller's first `next`."""
    from textclf.labeling.labeler import encode_texts

    chunks = iter(chunks)
    pending = deque(
        pool.submit(encode_texts, chunk, model_dir, "_text")
        for chunk in islice(chunks, processes * CHUNKS_AHEAD_PER_PROCESS)
    )

    def results() -> Iterator[pa.Table]:
        while pending:
            try:
                encoded = pending.popleft().result()
            except BrokenProcessPool as e:
                raise TextclfError("an encoding process died (out of memory?); rerun to resume") from e
            pending.extend(pool.submit(encode_texts, chunk, model_dir, "_text") for chunk in islice(chunks, 1))
            yield encoded

    return results()


def _start_encoder(model_dir: str, parent: int) -> None:
    from textclf.labeling.labeler import bundle_encoder

    # a parent killed with -9 cannot shut the pool down: its processes end themselves
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    bundle_encoder(model_dir)


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_CHECK_S)
    os._exit(1)
