"""Adopting a folder without a manifest, and sweeping files no generation needs.

Adoption: a database written before manifests existed is a folder of shards. The first
writer validates every file (contract schema, Parquet footer, one model) and publishes
generation 1 listing them, so nothing changes for readers except that from then on they
read the manifest.

Sweeping runs only after a new manifest is durable. It removes, under ``embeddings/`` and
``index/``, every shard or index file that neither the new generation nor the previous
one (``retired``) lists, every temporary file (``.<name>.<hex>.tmp``) in the database, the
journals the caller hands over, and empty partition folders. Files of the previous
generation stay until the next publish, so a reader that opened it just before can
finish; journaled shards of an unfinished write are kept (``protect``) unless a write
transaction publishes.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow.parquet as pq

from embedder import contract
from embedder.contract import Manifest, Partition
from embedder.contract.io import TMP_SUFFIX, is_temp
from embedder.contract.layout import listed_embedding_files
from embedder.errors import ModelMismatchError, SchemaError
from embedder.storage.shardfile import entry_of

log = logging.getLogger(__name__)

INDEX_PATTERNS = ("faiss-*.index", "rows-*.parquet", contract.SIDECAR_NAME)


def adopt(db: str | Path, command: str = "") -> Manifest | None:
    """Publish generation 1 for a folder of shards without a manifest (``None`` if it has none).

    Raises:
        SchemaError: a file is not an earthvec embeddings file or is truncated.
        ModelMismatchError: the files mix model versions or resolutions.
    """
    db = Path(db)
    files = listed_embedding_files(db)
    if not files:
        return None
    parts: dict[str, Partition] = {}
    first: contract.DatasetMeta | None = None
    for f in files:
        try:
            meta = contract.validate_schema(pq.read_schema(f), str(f))
            pq.read_metadata(f)
        except SchemaError as exc:
            raise SchemaError(f"{exc}; move it out of {contract.embeddings_dir(db)} and run again") from exc
        except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a broken file
            raise SchemaError(
                f"{f} is not a readable Parquet file ({exc}); move it out of {contract.embeddings_dir(db)} "
                "and run again"
            ) from exc
        if first is None:
            first = meta
        elif not first.compatible(meta) or first.partition_resolution != meta.partition_resolution:
            raise ModelMismatchError(
                f"{db} mixes embeddings: {files[0]} has {first.model} (res {first.h3_resolution}) but {f} "
                f"has {meta.model} (res {meta.h3_resolution}); never mix model versions: move one set out"
            )
        rel = f.relative_to(db).as_posix()
        parts.setdefault(f.parent.name.split("=", 1)[1], Partition()).files.append(entry_of(db, rel))
    assert first is not None
    m = Manifest(
        generation=1,
        model=first.model,
        dim=first.dim,
        h3_resolution=first.h3_resolution,
        partition_resolution=first.partition_resolution,
        partitions=parts,
        created=contract.utcnow(),
        command=f"adopted by: {command}" if command else "adopted",
    )
    contract.write_manifest(db, m)
    log.info("adopted %s: generation 1 lists its %d embeddings file(s)", db, len(files))
    return m


def sweep(db: str | Path, manifest: Manifest, journals: list[Path], protect: set[str] | None = None) -> int:
    """Remove what ``manifest`` (live + retired) does not need; returns the files removed.

    Args:
        db: database folder (the caller holds its lock).
        manifest: the generation just published.
        journals: journal files to delete (their transactions are finished or abandoned).
        protect: further relative paths to keep (shards journaled by an unfinished write).
    """
    db = Path(db)
    keep = manifest.paths() | set(manifest.retired) | (protect or set())
    removed = 0
    touched: set[Path] = set()
    candidates = [*contract.embeddings_dir(db).glob(f"{contract.PARTITION}=*/part-*.parquet")]
    for pattern in INDEX_PATTERNS:
        candidates += contract.index_dir(db).glob(pattern)
    candidates += [p for p in db.rglob("*" + TMP_SUFFIX) if is_temp(p)]
    for path in [*candidates, *journals]:
        rel = path.relative_to(db).as_posix()
        if rel in keep and not is_temp(path):
            continue
        try:
            path.unlink()
            removed += 1
            touched.add(path.parent)
        except FileNotFoundError:
            continue
    for part in contract.embeddings_dir(db).glob(f"{contract.PARTITION}=*"):
        try:
            part.rmdir()  # only when empty
            touched.add(part.parent)
        except OSError:
            pass
    for folder in touched:
        if folder.is_dir():
            contract.fsync_dir(folder)
    return removed
