"""Small text checkpoint files, written atomically (Kafka's ``CheckpointFile`` format).

A file is a version line, a count line and ``count`` lines of space-separated fields. Writing goes to
``<name>.tmp``, is fsynced, renamed over the file and the directory fsynced, so a crash leaves the old
file or the new one, never a torn mix. A missing, malformed or other-version file reads as None.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 0


def write_checkpoint(path: Path, entries: Iterable[Sequence[object]]) -> None:
    """Replace ``path`` with ``entries`` (each a sequence of fields without spaces); raises ``OSError``."""
    rows = [" ".join(str(field) for field in entry) for entry in entries]
    text = "\n".join([str(CHECKPOINT_VERSION), str(len(rows)), *rows, ""])
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_checkpoint(path: Path, fields: int) -> list[list[str]] | None:
    """The entries of ``path`` (each ``fields`` strings), or None if it is missing or malformed."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        logger.warning("cannot read checkpoint %s: %s", path, exc)
        return None
    if len(lines) < 2 or lines[0] != str(CHECKPOINT_VERSION) or not lines[1].isdigit():
        logger.warning("ignoring checkpoint %s: bad header", path)
        return None
    rows = [line.split(" ") for line in lines[2:]]
    if len(rows) != int(lines[1]) or any(len(row) != fields for row in rows):
        logger.warning("ignoring checkpoint %s: %d entries of %d fields expected", path, int(lines[1]), fields)
        return None
    return rows
