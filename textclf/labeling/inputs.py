"""Find the Parquet files behind a labeling INPUT and read their row counts from the footers.

INPUT is a file, a folder (searched recursively) or a glob, on the local disk or on any filesystem
pyarrow reaches (`s3://`, `gs://`, ...). A file whose footer cannot be read is kept with its error,
so a run can name it in the manifest and go on with the others.
"""

from __future__ import annotations

import fnmatch
import glob
import os
from dataclasses import dataclass

import pyarrow.fs as pafs
import pyarrow.parquet as pq

from textclf.errors import DataError, one_line

GLOB_CHARS = "*?["


@dataclass(frozen=True)
class InputFile:
    path: str  # as the filesystem names it
    rows: int | None  # from the footer; None when the file cannot be read
    error: str | None = None


def discover_inputs(spec: str, exclude: str | None = None) -> tuple[pafs.FileSystem, list[InputFile]]:
    """The filesystem and the input files in sorted order (stable across reruns). Files under the folder
    `exclude` (the run's OUTPUT, which may sit inside INPUT) are not inputs."""
    filesystem, paths = _find_parquet(spec)
    if exclude:
        paths = [p for p in paths if not p.startswith(exclude.rstrip("/") + "/")]
    if not paths:
        raise DataError(f"INPUT {spec} holds no Parquet files")
    return filesystem, [_with_row_count(filesystem, p) for p in sorted(paths)]


def _find_parquet(spec: str) -> tuple[pafs.FileSystem, list[str]]:
    if "://" in spec:
        has_glob = any(c in spec for c in GLOB_CHARS)
        base = spec[: min(spec.find(c) for c in GLOB_CHARS if c in spec)].rsplit("/", 1)[0] if has_glob else spec
        try:
            filesystem, root = pafs.FileSystem.from_uri(base)
        except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
            raise DataError(f"cannot open INPUT {spec}: {one_line(e)}") from None
        pattern = spec.split("://", 1)[1] if has_glob else None
        return filesystem, _list(filesystem, root, pattern)
    if any(c in spec for c in GLOB_CHARS):
        matches = glob.glob(spec, recursive=True)
        files = [os.path.abspath(m) for m in matches if os.path.isfile(m) and _is_data_file(m)]
        for folder in (m for m in matches if os.path.isdir(m)):
            files += _list(pafs.LocalFileSystem(), os.path.abspath(folder), None)
        return pafs.LocalFileSystem(), files
    if not os.path.exists(spec):
        raise DataError(f"INPUT {spec} does not exist")
    return pafs.LocalFileSystem(), _list(pafs.LocalFileSystem(), os.path.abspath(spec), None)


def _list(filesystem: pafs.FileSystem, root: str, pattern: str | None) -> list[str]:
    info = filesystem.get_file_info(root)
    if info.type == pafs.FileType.NotFound:
        raise DataError(f"INPUT {root} does not exist")
    if info.type == pafs.FileType.File:
        return [root]
    infos = filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
    return [
        i.path
        for i in infos
        if i.type == pafs.FileType.File
        and _is_data_file(i.path)
        and (pattern is None or fnmatch.fnmatch(i.path, pattern))
    ]


def _is_data_file(path: str) -> bool:
    # _SUCCESS, _manifest.json, .tmp files and the like are bookkeeping, not data
    name = os.path.basename(path)
    return name.endswith(".parquet") and not name.startswith(("_", "."))


def _with_row_count(filesystem: pafs.FileSystem, path: str) -> InputFile:
    try:
        with filesystem.open_input_file(path) as f:
            return InputFile(path, pq.ParquetFile(f).metadata.num_rows)
    except Exception as e:  # pyarrow raises several types for truncated or foreign files
        return InputFile(path, None, f"unreadable Parquet: {one_line(e)}")
