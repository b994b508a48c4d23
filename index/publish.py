"""Storing a built index: only under the database's writer lock, only for the data it indexes.

An index is built from one pinned snapshot of the embeddings (in memory). Storing it
writes ``faiss-<key>.index`` and ``rows-<key>.parquet`` (durably, keyed so they never
replace files a reader has open) and then publishes its :class:`~embedder.contract.Sidecar`:

* in a database with a manifest, as the manifest's ``index`` entry (one atomic publish,
  :func:`embedder.storage.publish_derived`), refused when the embeddings changed since;
* in a folder without a manifest, as ``DB/index/index.json``, removing index files that
  neither the new nor the previous sidecar names.

``wait=False`` (what read commands use) gives up when another process holds the lock:
the caller keeps its in-memory index and the database is left as it was. Inside a build,
:func:`index_into` writes the index of the generation the transaction is about to
publish (:func:`index.txindex.index_into`), so embeddings and index are published together.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import faiss
import pyarrow as pa

from embedder import contract
from embedder.contract import Derived, Sidecar, index_dir
from embedder.contract.manifest import INDEX
from embedder.storage import DbLock, derived_entry, publish_derived
from embedder.storage.lock import DatabaseLockedError

log = logging.getLogger(__name__)


def new_keys() -> tuple[str, str]:
    """Fresh names for an index file and its rows file."""
    key = uuid.uuid4().hex[:12]
    return f"faiss-{key}.index", f"rows-{key}.parquet"


def write_files(db: Path, index: faiss.Index, rows: pa.Table, sc: Sidecar) -> list[str]:
    """Write the index and rows files named by ``sc`` (durable); returns their relative paths."""
    folder = index_dir(db)
    contract.atomic_write_bytes(folder / sc.index_file, faiss.serialize_index(index).tobytes())
    contract.write_table_atomic(rows, folder / sc.rows_file)
    return [f"{contract.INDEX_DIR}/{sc.index_file}", f"{contract.INDEX_DIR}/{sc.rows_file}"]


def entry(sc: Sidecar, files: list[str], snap: contract.Snapshot) -> Derived:
    """The manifest entry of an index built from ``snap``."""
    return derived_entry(INDEX, files, snap, sc.model, {"sidecar": sc.to_dict()})


def store(
    db: Path, index: faiss.Index, rows: pa.Table, sc: Sidecar, snap: contract.Snapshot, *, wait: bool
) -> bool:
    """Store and publish an index built from ``snap``; False when it was not (see module doc)."""
    if snap.manifest is not None:
        paths = [f"{contract.INDEX_DIR}/{sc.index_file}", f"{contract.INDEX_DIR}/{sc.rows_file}"]
        return (
            publish_derived(
                db,
                {INDEX: entry(sc, paths, snap)},
                command="earthvec index",
                wait=wait,
                write=lambda: write_files(db, index, rows, sc),
            )
            is not None
        )
    try:
        with DbLock(db, "index", wait=wait):
            old = Sidecar.load(db)
            write_files(db, index, rows, sc)
            sc.save(db)
            keep = {sc.index_file, sc.rows_file} | ({old.index_file, old.rows_file} if old else set())
            folder = index_dir(db)
            for f in [*folder.glob("faiss-*.index"), *folder.glob("rows-*.parquet")]:
                if f.name not in keep:
                    f.unlink(missing_ok=True)
            return True
    except DatabaseLockedError as exc:
        log.info("index of %s kept in memory only: %s", db, exc)
        return False
