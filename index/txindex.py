"""The index of a write transaction: built from the generation it is about to publish.

``earthvec build`` calls :func:`index_into` before its commit (``finish=``), so the
embeddings and their index are published in one manifest.
"""

from __future__ import annotations

from embedder import contract
from embedder.contract import Sidecar
from embedder.contract.manifest import INDEX
from embedder.faults import crash_point
from embedder.storage import Transaction
from index.publish import entry, write_files
from index.store import build_index, load_stored, update_index


def index_into(tx: Transaction, *, factory: str | None = None, progress: bool = True) -> Sidecar | None:
    """Build (or update) the index of the generation ``tx`` will publish and add it to ``tx``.

    The base generation's index is updated partition by partition when it loads and its
    structure allows removal, else the index is built afresh; nothing is done when the
    index already matches (a build that changed nothing) or there are no embeddings.

    Returns:
        The new index's sidecar, or None when nothing was done.
    """
    snap = tx.pending_snapshot()
    m = snap.manifest
    if m is None or not snap.files:
        return None
    with contract.pinned(tx.db, snap):
        old = Sidecar.load(tx.db)
        fits = old is not None and old.model == m.model and old.dim == m.dim and factory is None
        if fits and old is not None and old.fingerprint == snap.fingerprint:
            return None
        loaded = load_stored(tx.db, old) if fits and old is not None else None
        if loaded is not None:
            meta = contract.read_meta(tx.db)
            vi = update_index(loaded, snap.signatures(), meta, progress=progress, publish=False)
        else:
            vi = build_index(tx.db, factory=factory, progress=progress, publish=False)
    sc = vi.sidecar
    files = write_files(tx.db, vi.index, vi.rows, sc)
    crash_point("index-written")
    tx.put_derived(INDEX, entry(sc, files, snap))
    return sc
