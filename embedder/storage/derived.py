"""Publishing derived data (index, pyramid levels, label layers, predictions) after the fact.

Derived data is computed from one generation (a pinned snapshot) by anyone, reader or
writer, into memory or keyed files; it becomes part of the database only through
:func:`publish_derived`, which takes the lock, checks that the embeddings are still the
ones it was made from and publishes a new manifest with the entry. A reader facing a
missing or stale index uses ``wait=False``: when a writer is busy it keeps its private
copy and publishes nothing. Files a publish replaces stay on disk until the next write
transaction commits (readers of the previous generation can finish).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from embedder import contract
from embedder.contract import Derived, Manifest
from embedder.faults import crash_point
from embedder.storage.journal import read_journals
from embedder.storage.lock import DatabaseLockedError, DbLock
from embedder.storage.sweep import sweep

log = logging.getLogger(__name__)


def origin(snap: contract.Snapshot, model: str) -> dict[str, Any]:
    """What derived data records about where it came from (also stored in its files)."""
    return {"generation": snap.generation, "fingerprint": snap.fingerprint, "model": model}


def derived_entry(
    kind: str, files: list[str], snap: contract.Snapshot, model: str, info: dict[str, Any] | None = None
) -> Derived:
    """The manifest entry of derived data made from ``snap``."""
    return Derived(kind, files, snap.generation, snap.fingerprint, model, info or {})


@contextmanager
def derived_writer(db: str | Path, command: str = "", *, wait: bool = True) -> Iterator[contract.Snapshot]:
    """Hold the lock of ``db`` and pin its current generation (for fixed-name derived files).

    Files written inside are made from the pinned generation, which cannot change while
    the lock is held; publish their entries with :func:`publish_derived` before leaving.

    Raises:
        DatabaseLockedError: another writer holds the lock and ``wait`` is false.
    """
    with DbLock(db, command, wait=wait), contract.pinned(db, contract.load_snapshot(db)) as snap:
        yield snap


def publish_derived(
    db: str | Path,
    entries: dict[str, Derived],
    *,
    command: str = "",
    wait: bool = True,
    write: Callable[[], object] | None = None,
) -> Manifest | None:
    """Publish derived entries in a new manifest generation.

    Args:
        db: database folder (with a manifest).
        entries: name -> entry, e.g. ``"index"``, ``"pyramid/res=5.parquet"``; each entry's
            ``fingerprint`` must match the published embeddings.
        command: recorded in the lock and the manifest.
        wait: wait for another writer (False: give up at once and return ``None``).
        write: optional callable run under the lock before publishing (writes the files of
            fixed-name artifacts such as pyramid levels; keyed files may be written before).

    Returns:
        The published manifest, or ``None`` when nothing was published (no manifest, the
        lock was busy with ``wait=False``, or the embeddings changed since).
    """
    try:
        lock = DbLock(db, command, wait=wait).acquire()
    except DatabaseLockedError as exc:
        log.info("not publishing %s: %s", ", ".join(entries), exc)
        return None
    try:
        m = contract.read_manifest(db)
        if m is None or any(d.fingerprint != m.fingerprint for d in entries.values()):
            log.info("not publishing %s of %s: the embeddings changed since", ", ".join(entries), db)
            return None
        if write is not None:
            write()
        new = Manifest(
            **{**m.__dict__, "generation": m.generation + 1, "derived": {**m.derived, **entries}}
        )
        new.created, new.command = contract.utcnow(), command or m.command
        new.retired = sorted((set(m.retired) | m.paths()) - new.paths())  # kept until the next build
        contract.write_manifest(db, new)
        crash_point("published")
        protect = {r.file.path for _, _, recs in read_journals(db) for r in recs if r.file is not None}
        sweep(db, new, [], protect)
        return new
    finally:
        lock.release()
