"""Files that appear whole or not at all."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path

TMP_PREFIX = ".tmp-"  # hidden: readers of a folder (pyarrow datasets, Spark, globs) skip unfinished files


def temporary_sibling(path: Path) -> Path:
    """A hidden, unique name beside `path` in the same folder, so a rename onto `path` is atomic."""
    return path.with_name(f"{TMP_PREFIX}{uuid.uuid4().hex}-{path.name}")


def write_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """`write(tmp)` fills a temporary sibling of `path`, which is then renamed onto it: readers, a
    concurrent run or an interrupted one never see half a file. The sibling goes if `write` fails."""
    path = Path(path)
    tmp = temporary_sibling(path)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
