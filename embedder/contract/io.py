"""Durable atomic file writes: the one place earthvec writes a file that others read.

Every file is written under a temporary name beside its target, flushed to disk
(``fsync``), moved into place with ``os.replace`` (atomic on POSIX) and then the folder is
flushed too (``fsync`` of the directory), so after a crash or power loss the path holds
either the old file or the whole new one, and a published name never points at nothing.
New folders are flushed into their parent the same way.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from embedder.faults import crash_point

COMPRESSION = "zstd"
TMP_SUFFIX = ".tmp"


def temp_path(path: Path) -> Path:
    """A hidden temporary name beside ``path`` (unique per call; swept after a crash)."""
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}{TMP_SUFFIX}")


def is_temp(path: Path) -> bool:
    """Whether ``path`` is a temporary name made by :func:`temp_path`."""
    return path.name.startswith(".") and path.name.endswith(TMP_SUFFIX)


def fsync_file(path: Path) -> None:
    """Flush a file's data and metadata to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: Path) -> None:
    """Flush a folder's entries (names created, replaced or removed in it) to disk."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError:  # some file systems cannot fsync a folder; the rename is still atomic
        pass
    finally:
        os.close(fd)


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that flushes each new folder's name into its parent."""
    path = Path(path)
    if path.is_dir():
        return
    make_dirs(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    fsync_dir(path.parent)


def publish_file(tmp: Path, path: Path) -> None:
    """Flush ``tmp``, move it onto ``path`` and flush the folder (the durable rename)."""
    fsync_file(tmp)
    crash_point("tmp-written")
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` durably and atomically."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_path(path)
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_table_atomic(table: pa.Table, path: Path) -> None:
    """Write a Parquet file durably and atomically: never half a file."""
    path = Path(path)
    make_dirs(path.parent)
    tmp = temp_path(path)
    try:
        pq.write_table(table, tmp, compression=COMPRESSION)
        publish_file(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def copy_atomic(src: Path, dst: Path) -> None:
    """Copy ``src`` to ``dst`` durably and atomically."""
    dst = Path(dst)
    make_dirs(dst.parent)
    tmp = temp_path(dst)
    try:
        shutil.copyfile(src, tmp)
        publish_file(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def utcnow() -> str:
    """The current UTC time as ISO text (for build records)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
