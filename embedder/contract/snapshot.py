"""What a reader sees: one generation of a database, pinned for the length of an operation.

:func:`snapshot` loads ``DB/manifest.json`` and lists its files; a folder without a
manifest (written before manifests existed, or by hand) is read by listing
``embeddings/``. A reader that reads the file list more than once during one operation (a
search opens the metadata, the fingerprint, then the partitions) pins the snapshot::

    with pinned(db):
        meta = read_meta(db)            # every call inside sees the same generation
        files = embedding_files(db)

Pins are per process (threads share them, so a prefetch thread sees the same files) and
nest; an explicit snapshot can be pinned, which is how a writer builds derived data
(the index) from the generation it is about to publish.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from embedder.contract.layout import embeddings_dir, listed_embedding_files, no_embeddings
from embedder.contract.manifest import Manifest, fingerprint, read_manifest

TAIL_BYTES = 64 * 1024


def file_signature(path: Path) -> str:
    """Size plus a hash of the file's tail (its Parquet footer): for folders without a manifest."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    return f"{size}:{hashlib.sha256(tail).hexdigest()[:16]}"


@dataclass(frozen=True)
class Snapshot:
    """One generation of a database as a reader sees it.

    Attributes:
        db: the database folder.
        manifest: the published manifest; ``None`` for a folder without one (legacy).
        files: the embeddings files, sorted.
    """

    db: Path
    manifest: Manifest | None
    files: tuple[Path, ...]

    @property
    def generation(self) -> int:
        """The manifest generation (0 for a folder without a manifest)."""
        return self.manifest.generation if self.manifest else 0

    def signatures(self) -> dict[str, str]:
        """``path relative to embeddings/ -> signature`` of every file."""
        if self.manifest is not None:
            return self.manifest.signatures()
        root = embeddings_dir(self.db)
        return {f.relative_to(root).as_posix(): file_signature(f) for f in self.files}

    @property
    def fingerprint(self) -> str:
        """One hash over the files (the origin derived data records)."""
        return fingerprint(self.signatures())


_PINS: dict[Path, list[Snapshot]] = {}
_PIN_LOCK = threading.Lock()


def _key(db: str | Path) -> Path:
    return Path(db).resolve()


def load_snapshot(db: str | Path) -> Snapshot:
    """The database as published now (ignores pins).

    Raises:
        SchemaError: the manifest is unreadable.
    """
    db = Path(db)
    m = read_manifest(db)
    if m is None:
        return Snapshot(db, None, tuple(listed_embedding_files(db)))
    return Snapshot(db, m, tuple(db / f.path for f in m.files()))


def snapshot(db: str | Path) -> Snapshot:
    """The pinned snapshot of ``db`` if one is pinned in this process, else the current one."""
    with _PIN_LOCK:
        stack = _PINS.get(_key(db))
        if stack:
            return stack[-1]
    return load_snapshot(db)


@contextmanager
def pinned(db: str | Path, snap: Snapshot | None = None) -> Iterator[Snapshot]:
    """Pin ``snap`` (default: the current snapshot, or the one already pinned) for ``db``."""
    key = _key(db)
    snap = snap or snapshot(db)
    with _PIN_LOCK:
        _PINS.setdefault(key, []).append(snap)
    try:
        yield snap
    finally:
        with _PIN_LOCK:
            stack = _PINS[key]
            stack.pop()
            if not stack:
                del _PINS[key]


def embedding_files(db: str | Path) -> list[Path]:
    """The embeddings files of ``db`` (of the pinned generation, if any), sorted.

    Raises:
        InputNotFoundError: when ``db`` holds no embeddings.
    """
    files = list(snapshot(db).files)
    if not files:
        raise no_embeddings(db)
    return files


def file_signatures(db: str | Path) -> dict[str, str]:
    """``relative path -> signature`` for every embeddings file of ``db``."""
    return snapshot(db).signatures()
