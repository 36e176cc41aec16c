"""Drop known-harmless lines from this process's stderr, C++ log lines included.

Ray's core worker logs, at error level and from C++, that an actor whose constructor arguments live in
the object store may fail to restart if they are lost (ray#53727). Ray Data always passes its actor
pool's constructor arguments that way, so every `textclf label` printed the line, through its progress
bar. Python's logging cannot reach a C++ log line, so file descriptor 2 itself goes through a pipe whose
reader drops the lines that match and passes everything else on unchanged.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import threading
from collections.abc import Iterator

RAY_53727 = r"has constructor arguments in the object store and max_restarts > 0"


@contextlib.contextmanager
def without_stderr_lines(pattern: str) -> Iterator[None]:
    """Within the block, lines written to fd 2 that match `pattern` are dropped. A partial line is held
    back only while it may be a log line ("[" first); anything else, a progress bar's update included,
    passes at once. Processes started in the block share the pipe: end them before the block ends."""
    match = re.compile(pattern.encode()).search
    sys.stderr.flush()
    original = os.dup(2)
    read_end, write_end = os.pipe()
    os.dup2(write_end, 2)
    os.close(write_end)

    def relay() -> None:
        held = b""
        with os.fdopen(read_end, "rb", buffering=0) as source:
            for chunk in iter(lambda: source.read(65536), b""):
                *lines, held = re.split(rb"(?<=[\n\r])", held + chunk)  # terminators kept
                if held and not held.startswith(b"["):
                    lines.append(held)
                    held = b""
                passed = b"".join(line for line in lines if not match(line))
                if passed:
                    os.write(original, passed)
        if held and not match(held):
            os.write(original, held)

    thread = threading.Thread(target=relay, name="stderr-filter", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(original, 2)  # the pipe's last writer here: the relay drains it and ends
        thread.join(timeout=10)
        os.close(original)
