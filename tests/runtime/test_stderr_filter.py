"""Lines dropped from fd 2, C++ writers included; everything else passes unchanged."""

import subprocess
import sys

SCRIPT = """
import os, sys
from textclf.runtime.stderr_filter import RAY_53727, without_stderr_lines
with without_stderr_lines(RAY_53727):
    os.write(2, b"[2026 E core_worker.cc:2465] Actor ... has constructor arguments in the object store and "
                b"max_restarts > 0. See ray#53727\\n")
    print("a real error line", file=sys.stderr, flush=True)
    os.write(2, b"\\rbar 1/2")
    os.write(2, b"\\rbar 2/2\\n")
    os.write(2, b"[2026 E another C++ error]\\n")
    print("no newline at the end", end="", file=sys.stderr, flush=True)
print(" | after the block", file=sys.stderr)
"""


def test_only_the_matching_line_is_dropped():
    done = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, timeout=60)  # bytes: \r kept
    assert done.returncode == 0, done.stderr
    assert done.stderr == (
        b"a real error line\n\rbar 1/2\rbar 2/2\n[2026 E another C++ error]\nno newline at the end | after the block\n"
    )
