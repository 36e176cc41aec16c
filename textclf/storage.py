"""Folders on the local disk or on any filesystem pyarrow reaches (`s3://`, `gs://`, `hdfs://`), with the
few operations the labeling output and bundle loading need.

Files are written under a hidden temporary name and moved into place: on a local disk the move is a
rename; on an object store it is a server-side copy, which creates the final object whole or not at
all (a temporary object left by a killed run stays hidden and is removed by the next run).
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.fs as pafs

from textclf.errors import DataError, one_line
from textclf.files import TMP_PREFIX, temporary_sibling


def is_uri(spec: str | os.PathLike) -> bool:
    return "://" in str(spec)


class Folder:
    def __init__(self, spec: str | os.PathLike) -> None:
        self.spec = str(spec)
        if is_uri(spec):
            try:
                self.fs, root = pafs.FileSystem.from_uri(self.spec)
            except (ValueError, OSError) as e:  # pyarrow's ArrowInvalid is a ValueError
                raise DataError(f"cannot open {self.spec}: {one_line(e)}") from None
            self.root = root.rstrip("/")
        else:
            self.fs, self.root = pafs.LocalFileSystem(), str(Path(spec).resolve())

    @property
    def local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def __str__(self) -> str:
        return self.spec

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def mkdir(self) -> None:
        self.fs.create_dir(self.root, recursive=True)

    def exists(self, name: str = "") -> bool:
        return self.fs.get_file_info(self.path(name) if name else self.root).type != pafs.FileType.NotFound

    def names(self) -> list[str]:
        """The files directly inside (none when the folder does not exist)."""
        if not self.exists():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.root))
        return sorted(i.base_name for i in infos if i.type == pafs.FileType.File)

    def read_text(self, name: str) -> str:
        with self.fs.open_input_stream(self.path(name)) as f:
            return f.read().decode()

    def write_text(self, name: str, text: str) -> None:
        tmp = self.temporary(name)
        try:
            with self.fs.open_output_stream(tmp) as f:
                f.write(text.encode())
            self.move_into_place(tmp, name)
        finally:
            self.delete(tmp.rsplit("/", 1)[1])

    def delete(self, name: str) -> None:
        try:
            self.fs.delete_file(self.path(name))
        except FileNotFoundError:
            pass

    def temporary(self, name: str) -> str:
        """A hidden, unique path beside `name`, for a file on its way in."""
        return str(temporary_sibling(Path(self.path(name))))

    def open_output(self, path: str):
        return self.fs.open_output_stream(path)

    def open_input(self, name: str):
        return self.fs.open_input_file(self.path(name))

    def move_into_place(self, tmp: str, name: str) -> None:
        self.fs.move(tmp, self.path(name))


def is_temporary(name: str) -> bool:
    return name.startswith(TMP_PREFIX)
