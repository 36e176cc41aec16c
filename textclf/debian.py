"""Files of Debian's package archive (a package registry these machines reach), fetched and checked.

Only files of a released, frozen suite are used, each pinned by its sha256, so what is read never
changes; a file that does not match is refused.
"""

from __future__ import annotations

import hashlib
import urllib.error
import urllib.request

from textclf.errors import DataError, one_line

MIRROR = "http://deb.debian.org/debian/"  # plain HTTP as apt uses it: the pinned sha256 guards the content


def download_archive_file(path: str, sha256: str, what: str, timeout_s: float = 120.0) -> bytes:
    """The archive file at `path` (e.g. "dists/bullseye/main/i18n/Translation-en.bz2") as bytes, its sha256
    checked; DataError naming `what` when it cannot be fetched or does not match."""
    try:
        with urllib.request.urlopen(MIRROR + path, timeout=timeout_s) as response:
            data = response.read()
    except (urllib.error.URLError, OSError) as e:
        raise DataError(f"cannot fetch {what}: {MIRROR + path} is unreachable ({one_line(e)})") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        raise DataError(f"cannot use {what}: {MIRROR + path} has sha256 {digest}, expected {sha256}")
    return data


def stanzas(text: str):
    """The fields of each stanza of a Debian control file (Packages, Translation-en): one dict per
    stanza, continuation lines kept with their leading space."""
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key is not None:
                fields[key] += "\n" + line
            elif ":" in line:
                key, _, value = line.partition(":")
                fields[key] = value.strip()
        if fields:
            yield fields


def description_text(description: str) -> str:
    """A Description field as plain text: the synopsis, then the long description's paragraphs (its
    " ." lines) separated by blank lines."""
    lines = description.split("\n")
    body = ["" if line.strip() == "." else line.strip() for line in lines[1:]]
    return "\n".join([lines[0].strip(), *body]).strip()
