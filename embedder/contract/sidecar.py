"""The JSON sidecar stored beside a FAISS index, and the dataset fingerprint it records.

The sidecar says what the index was built from: factory string, dimension, vector count,
model ``name@version`` and a fingerprint of every embeddings file. Opening an index compares
the sidecar with the database: another model is an error, changed files mean a stale index.

The signature of a file is its path relative to ``DB/embeddings``, its size and a hash:
of its bytes (the SHA-256 the manifest records) or, in a folder without a manifest, of its
last 64 KiB (the Parquet footer with row counts, offsets and column statistics), so it
follows the content and survives copies that do not keep modification times.

Where the sidecar lives: in a database with a manifest it is part of the manifest (the
``index`` entry of ``derived``), published with the generation it indexes; a folder
without a manifest keeps it in ``DB/index/index.json``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedder.contract.io import atomic_write_bytes
from embedder.contract.layout import SIDECAR_NAME, index_dir
from embedder.contract.manifest import INDEX, fingerprint
from embedder.contract.snapshot import file_signature, file_signatures
from embedder.errors import IndexMismatchError

__all__ = ["SIDECAR_VERSION", "Sidecar", "file_signature", "file_signatures", "fingerprint"]

SIDECAR_VERSION = 1


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

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (stored in the manifest)."""
        return asdict(self)

    @classmethod
    def load(cls, db: str | Path) -> Sidecar | None:
        """Read the sidecar of ``db`` (of the pinned snapshot, if any); ``None`` without an index.

        Raises:
            IndexMismatchError: when the sidecar is unreadable.
        """
        from embedder.contract.snapshot import snapshot

        m = snapshot(db).manifest
        if m is not None:
            entry = m.derived.get(INDEX)
            if entry is None:
                return None
            try:
                return cls(**entry.info["sidecar"])
            except (KeyError, TypeError) as exc:
                raise IndexMismatchError(
                    f"the index entry of {db}/manifest.json is malformed ({exc}); "
                    f"rebuild it: earthvec index {db}"
                ) from exc
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
        """Write ``DB/index/index.json`` atomically (folders without a manifest)."""
        atomic_write_bytes(index_dir(db) / SIDECAR_NAME, self.to_json())
