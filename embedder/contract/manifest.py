"""The manifest ``DB/manifest.json``: the published state of a database (one generation).

A database is what its manifest lists, nothing else: the live embeddings files (path,
size, SHA-256, rows) grouped by partition, the model ``name@version``, dimension and
resolutions, a ``generation`` number that grows by one at every publish, and the derived
artifacts (FAISS index, pyramid levels, label layers, prediction maps), each with the
generation, embeddings fingerprint and model it was made from. Writers replace the file
atomically and durably (:mod:`embedder.contract.io`) while holding the database lock, so a
reader that loads it sees one whole generation. ``retired`` lists the files the previous
generation used and this one does not: they stay on disk until the next publish, so a
reader that opened the previous generation just before can finish.

Paths are relative to the database folder, with ``/`` separators.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedder.contract.io import atomic_write_bytes
from embedder.contract.layout import EMBEDDINGS_DIR, manifest_path
from embedder.errors import SchemaError

MANIFEST_FORMAT = "earthvec-manifest/1"

INDEX = "index"
PYRAMID = "pyramid"
LABELS = "labels"
PREDICTIONS = "predictions"
DERIVED_KINDS = (INDEX, PYRAMID, LABELS, PREDICTIONS)


def fingerprint(signatures: dict[str, str]) -> str:
    """One hash over sorted ``path -> signature`` pairs."""
    h = hashlib.sha256()
    for name in sorted(signatures):
        h.update(f"{name}\t{signatures[name]}\n".encode())
    return h.hexdigest()[:24]


@dataclass(frozen=True)
class FileEntry:
    """One embeddings file of a generation.

    Attributes:
        path: relative to the database folder (``embeddings/h3_parent=<p>/part-<k>.parquet``).
        size: bytes.
        sha256: hex SHA-256 of the bytes.
        rows: row count (from the Parquet footer).
    """

    path: str
    size: int
    sha256: str
    rows: int

    def signature(self) -> str:
        """``size:hash`` as recorded in an index sidecar (see :mod:`embedder.contract.sidecar`)."""
        return f"{self.size}:{self.sha256[:16]}"


@dataclass(frozen=True)
class ShardRecord:
    """A finished shard of a write transaction (a journal line; picklable).

    Attributes:
        partition: hex id of the ``h3_parent`` partition.
        key: the content key of the rows written (what they were made from).
        target: relative path the shard was written to (it names the base files, too).
        file: the written file; ``None`` when the partition is empty after the write.
    """

    partition: str
    key: str
    target: str
    file: FileEntry | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ShardRecord:
        """Inverse of :meth:`to_dict`."""
        f = d.get("file")
        return cls(d["partition"], d["key"], d["target"], FileEntry(**f) if f else None)


@dataclass
class Partition:
    """The live files of one partition and the content key last written into it."""

    key: str | None = None
    files: list[FileEntry] = field(default_factory=list)


@dataclass
class Derived:
    """A derived artifact and its origin.

    Attributes:
        kind: ``index``, ``pyramid``, ``labels`` or ``predictions``.
        files: its files, relative to the database folder.
        generation: the manifest generation it was made from.
        fingerprint: the embeddings fingerprint it was made from.
        model: ``name@version`` of the embeddings it was made from.
        info: kind-specific details (the index sidecar, a level's resolution ...).
    """

    kind: str
    files: list[str]
    generation: int
    fingerprint: str
    model: str
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class Manifest:
    """One generation of a database (see the module docstring)."""

    generation: int
    model: str
    dim: int
    h3_resolution: int
    partition_resolution: int
    partitions: dict[str, Partition] = field(default_factory=dict)
    derived: dict[str, Derived] = field(default_factory=dict)
    retired: list[str] = field(default_factory=list)
    created: str = ""
    command: str = ""
    format: str = MANIFEST_FORMAT

    def files(self) -> list[FileEntry]:
        """Every live embeddings file, sorted by path."""
        return sorted((f for p in self.partitions.values() for f in p.files), key=lambda f: f.path)

    def paths(self) -> set[str]:
        """Relative paths of every live file (embeddings and derived)."""
        out = {f.path for f in self.files()}
        for d in self.derived.values():
            out.update(d.files)
        return out

    @property
    def rows(self) -> int:
        """Rows in this generation."""
        return sum(f.rows for f in self.files())

    def signatures(self) -> dict[str, str]:
        """``path relative to embeddings/ -> size:hash`` of every live file (no file is read)."""
        prefix = EMBEDDINGS_DIR + "/"
        return {f.path.removeprefix(prefix): f.signature() for f in self.files()}

    @property
    def fingerprint(self) -> str:
        """One hash over the live files (what derived artifacts record as their origin)."""
        return fingerprint(self.signatures())

    def to_json(self) -> bytes:
        """Serialised manifest (sorted keys, with its row count and fingerprint for people)."""
        d = asdict(self)
        d["rows"] = self.rows
        d["fingerprint"] = self.fingerprint
        return json.dumps(d, indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes | str, where: str = "manifest.json") -> Manifest:
        """Parse a manifest.

        Raises:
            SchemaError: unreadable, or of another format.
        """
        try:
            d = json.loads(raw)
            if d.get("format") != MANIFEST_FORMAT:
                raise SchemaError(
                    f"{where} has format {d.get('format')!r}; this earthvec reads {MANIFEST_FORMAT}: "
                    "upgrade earthvec"
                )
            d.pop("rows", None)
            d.pop("fingerprint", None)
            d["partitions"] = {
                k: Partition(v.get("key"), [FileEntry(**f) for f in v.get("files", [])])
                for k, v in d.get("partitions", {}).items()
            }
            d["derived"] = {k: Derived(**v) for k, v in d.get("derived", {}).items()}
            return cls(**d)
        except SchemaError:
            raise
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            raise SchemaError(
                f"{where} is not a valid earthvec manifest ({exc}); restore it from a backup or "
                "rebuild the database"
            ) from exc


def read_manifest(db: str | Path) -> Manifest | None:
    """The manifest of ``db`` as on disk now; ``None`` for a folder without one.

    Raises:
        SchemaError: the manifest is unreadable.
    """
    path = manifest_path(db)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    return Manifest.from_json(raw, str(path))


def write_manifest(db: str | Path, manifest: Manifest) -> None:
    """Publish ``manifest`` (durable atomic replace; call only while holding the lock)."""
    atomic_write_bytes(manifest_path(db), manifest.to_json())
