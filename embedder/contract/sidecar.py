"""The JSON sidecar stored beside a FAISS index, and the dataset fingerprint it records.

The sidecar says what the index was built from: factory string, dimension, vector count,
model ``name@version`` and a fingerprint of every embeddings file. Opening an index compares
the sidecar with the database: another model is an error, changed files mean a stale index.

The fingerprint of a file is its path relative to ``DB/embeddings``, its size and a hash of
its last 64 KiB (the Parquet footer with row counts, offsets and column statistics), so it
follows the content and survives copies that do not keep modification times.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedder.contract.io import atomic_write_bytes
from embedder.contract.layout import SIDECAR_NAME, embedding_files, embeddings_dir, index_dir
from embedder.errors import IndexMismatchError

SIDECAR_VERSION = 1
TAIL_BYTES = 64 * 1024


def file_signature(path: Path) -> str:
    """Size plus a hash of the file's tail (its Parquet footer)."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        fh.seek(max(0, size - TAIL_BYTES))
        tail = fh.read()
    return f"{size}:{hashlib.sha256(tail).hexdigest()[:16]}"


def file_signatures(db: str | Path) -> dict[str, str]:
    """``relative path -> signature`` for every embeddings file of ``db``."""
    root = embeddings_dir(db)
    return {f.relative_to(root).as_posix(): file_signature(f) for f in embedding_files(db)}


def fingerprint(signatures: dict[str, str]) -> str:
    """One hash over sorted file signatures."""
    h = hashlib.sha256()
    for name in sorted(signatures):
        h.update(f"{name}\t{signatures[name]}\n".encode())
    return h.hexdigest()[:24]


@dataclass
class Sidecar:
    """What an index was built from (stored as ``DB/index/index.json``).

    Attributes:
        factory: FAISS factory string, e.g. ``"IDMap2,Flat"``.
        dim: vector length.
        count: number of indexed cells (one vector per cell: its most recent row).
        model: ``name@version`` of the embeddings.
        h3_resolution: resolution of the indexed cells.
        partition_resolution: resolution of the ``h3_parent`` partitions.
        fingerprint: hash over ``files``.
        files: per-file signatures (relative path -> signature).
        index_file: name of the FAISS file in ``DB/index``.
        rows_file: name of the Parquet file with the indexed rows' attributes.
        multi_date: whether some cell has rows at several datetimes.
        faiss_version: FAISS version that wrote the index.
        built_at: UTC time of the (last) build.
    """

    factory: str
    dim: int
    count: int
    model: str
    h3_resolution: int
    partition_resolution: int
    fingerprint: str
    files: dict[str, str] = field(default_factory=dict)
    index_file: str = ""
    rows_file: str = ""
    multi_date: bool = False
    faiss_version: str = ""
    built_at: str = ""
    version: int = SIDECAR_VERSION

    def to_json(self) -> bytes:
        """Serialised sidecar."""
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def load(cls, db: str | Path) -> Sidecar | None:
        """Read the sidecar of ``db``; ``None`` when there is no index yet.

        Raises:
            IndexMismatchError: when the sidecar is unreadable.
        """
        path = index_dir(db) / SIDECAR_NAME
        if not path.exists():
            return None
        try:
            d: dict[str, Any] = json.loads(path.read_text())
            return cls(**d)
        except (ValueError, TypeError) as exc:
            raise IndexMismatchError(
                f"{path} is not a valid index sidecar ({exc}); delete {index_dir(db)} and the "
                "index is rebuilt from the embeddings on next use"
            ) from exc

    def save(self, db: str | Path) -> None:
        """Write the sidecar atomically."""
        atomic_write_bytes(index_dir(db) / SIDECAR_NAME, self.to_json())
