"""The write transaction every writer of embeddings goes through.

::

    with Transaction(db, command="earthvec build ...", replace=False, wait=True) as tx:
        tx.check_meta(meta)                        # another model/resolution: refused unless replace
        if not tx.has_shard(partition, key):       # resume: journal/manifest + footer + checksum
            tx.write_shard(partition, key, table)  # durable, journaled
        report = tx.commit()                       # publish the new manifest, then sweep

The new generation is the base one (nothing with ``replace=True``) with each written
partition upserted by ``(h3, datetime)``: new rows replace old rows of the same cell and
time, rows only in the old files stay, and ``delete`` keys go. Until :meth:`commit` the
published database is untouched; a kill at any moment leaves the old or the new
generation. Leaving the ``with`` block without committing keeps the journal, so the next
transaction resumes the finished shards (after checking them).

Workers (processes, Ray actors) write shards without the lock: the driver hands them a
:class:`~embedder.storage.shardfile.ShardTarget` from :meth:`target` and records what
:func:`~embedder.storage.shardfile.write_shard_file` returns with :meth:`add`.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import pyarrow as pa

from embedder import contract
from embedder.contract import Derived, Manifest, Partition, ShardRecord
from embedder.contract.layout import listed_embedding_files
from embedder.contract.writer import JournalHeader
from embedder.errors import EarthvecError, ModelMismatchError, SchemaError
from embedder.faults import crash_point
from embedder.storage.journal import Journal, read_journals
from embedder.storage.lock import DbLock
from embedder.storage.shardfile import ShardTarget, target_path, verify, write_shard_file
from embedder.storage.sweep import adopt, sweep

log = logging.getLogger(__name__)

MIX_FIX = "build into a new database folder, or pass --overwrite to replace the old embeddings"


class Transaction:
    """One write to a database (see the module docstring).

    Args:
        db: database folder (created when missing).
        command: what runs (recorded in the lock and the manifest).
        replace: start from an empty generation (``--overwrite``).
        wait: wait for another writer instead of failing (``--no-wait`` sets False).
    """

    def __init__(self, db: str | Path, command: str = "", *, replace: bool = False, wait: bool = True):
        self.db = Path(db)
        self.command = command
        self.replace = replace
        self.lock = DbLock(self.db, command, wait=wait)
        self.base: Manifest | None = None
        self.meta: contract.DatasetMeta | None = None
        self.records: dict[str, ShardRecord] = {}
        self.derived: dict[str, Derived] = {}
        self.published: Manifest | None = None
        self.reused = 0
        self._candidates: dict[str, ShardRecord] = {}
        self._old_journals: list[Path] = []
        self._journal: Journal | None = None
        self._mutex = threading.Lock()
        self._created = False

    def __enter__(self) -> Transaction:
        self._created = not self.db.exists()
        self.lock.acquire()
        try:
            self.base = contract.read_manifest(self.db) or self._adopt()
            if self.base is None and not listed_embedding_files(self.db):
                # a new database: publish "empty" first, so that shards written before the
                # first commit are never mistaken for a folder without a manifest
                self.base = Manifest(0, "", 0, 0, 0, created=contract.utcnow(), command=self.command)
                contract.write_manifest(self.db, self.base)
            for path, _, recs in read_journals(self.db):
                self._old_journals.append(path)
                for r in recs:
                    self._candidates[r.target] = r
        except BaseException:
            self.lock.release()
            raise
        return self

    def _adopt(self) -> Manifest | None:
        """Adopt a folder without a manifest; a broken one only blocks writes that keep it."""
        try:
            return adopt(self.db, self.command)
        except (SchemaError, ModelMismatchError) as exc:
            if not self.replace:
                raise
            log.warning("not adopting %s (%s): it is replaced as a whole", self.db, exc)
            return None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self._journal is not None:
            self._journal.close()
            if isinstance(exc, EarthvecError) and self.published is None and exc.args:
                n = len(self.records)  # say what the failure kept (nothing was published)
                exc.args = (
                    f"{exc.args[0]} (nothing was published; the {n} shard(s) finished before the error "
                    "are kept, so running the same command again resumes after them)",
                    *exc.args[1:],
                )
        try:
            if exc_type is not None and self._created and self._journal is None and self.published is None:
                # a failed first write that finished no shard: leave no folder behind
                shutil.rmtree(self.db, ignore_errors=True)
        finally:
            self.lock.release()

    @property
    def generation(self) -> int:
        """The base generation (0 for a new database)."""
        return self.base.generation if self.base else 0

    def _live_base(self) -> Manifest | None:
        return None if self.replace or self.base is None or not self.base.partitions else self.base

    def check_meta(self, meta: contract.DatasetMeta, fix: str = MIX_FIX) -> None:
        """Refuse rows of another model, dimension or resolution than the base (unless ``replace``).

        Raises:
            ModelMismatchError: naming both models and ``fix``.
        """
        self.meta = meta
        base = self._live_base()
        if base is None:
            return
        ours = (meta.model, meta.dim, meta.h3_resolution, meta.partition_resolution)
        if (base.model, base.dim, base.h3_resolution, base.partition_resolution) != ours:
            raise ModelMismatchError(
                f"{self.db} already holds embeddings from {base.model} at H3 res {base.h3_resolution} "
                f"(partitions at res {base.partition_resolution}); this build uses {meta.model} at res "
                f"{meta.h3_resolution} (partitions at res {meta.partition_resolution}). Never mix model "
                f"versions: {fix}"
            )

    def base_partition(self, partition: str) -> Partition | None:
        """The partition in the base generation (``None`` if absent or ``replace``)."""
        base = self._live_base()
        return base.partitions.get(partition) if base else None

    def target(self, partition: str, key: str) -> ShardTarget:
        """Where the upsert of ``key`` into ``partition`` goes (picklable, for workers).

        The database path is absolute: a worker may run in another folder (a Ray worker).
        """
        part = self.base_partition(partition)
        files = part.files if part else []
        return ShardTarget(
            str(self.db.absolute()),
            partition,
            key,
            target_path(partition, key, files),
            tuple(f.path for f in files),
        )

    def has_shard(self, partition: str, key: str) -> bool:
        """Whether ``key`` is already written into ``partition`` (checked, never just ``exists()``).

        True when the base generation's partition last took ``key`` and its files verify,
        or when a journal (this or an abandoned transaction's) holds the same upsert and its
        file verifies (size, Parquet footer, SHA-256); a journaled shard is then recorded.

        Raises:
            SchemaError: a published file fails its check (the disk changed it).
        """
        if partition in self.records:
            return self.records[partition].key == key
        part = self.base_partition(partition)
        if part is not None and part.key == key:
            bad = [f.path for f in part.files if not verify(self.db, f)]
            if bad:
                raise SchemaError(
                    f"{self.db / bad[0]} no longer matches its size or checksum in the manifest (disk "
                    "corruption or an outside edit); rebuild the database with --overwrite"
                )
            return True
        rec = self._candidates.get(self.target(partition, key).path)
        if rec is not None and rec.key == key and (rec.file is None or verify(self.db, rec.file)):
            self.add(rec)
            self.reused += 1
            return True
        return False

    def add(self, record: ShardRecord) -> None:
        """Record a finished shard (journaled and flushed before this returns).

        Raises:
            EarthvecError: the partition was already written in this transaction.
        """
        if record.partition in self.records:
            raise EarthvecError(
                f"partition {record.partition} is written twice in one transaction; give each "
                "partition's rows to one write_shard call"
            )
        with self._mutex:
            if self._journal is None:  # opened on the first shard: a failed start leaves no journal
                stamp = contract.utcnow().replace(":", "").replace("-", "")[:15]
                tx = f"{stamp}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
                header = JournalHeader(tx, self.generation, self.replace, self.command)
                self._journal = Journal(self.db, header)
            crash_point("shard-written")
            self._journal.append(record)
            self.records[record.partition] = record
        crash_point("journaled")

    def write_shard(
        self,
        partition: str,
        key: str,
        table: pa.Table,
        *,
        delete: Sequence[tuple[int, datetime | None]] = (),
    ) -> ShardRecord:
        """Upsert ``table`` (contract rows of one partition) durably and journal it."""
        rec = write_shard_file(self.target(partition, key), table, delete)
        self.add(rec)
        return rec

    def put_derived(self, name: str, derived: Derived) -> None:
        """Publish a derived artifact with this generation (e.g. the index the build made)."""
        self.derived[name] = derived

    def pending(self) -> Manifest:
        """The generation :meth:`commit` will publish (for derived data built before it)."""
        meta = self.meta
        base = self.base
        if meta is None and base is None:
            raise EarthvecError("nothing to publish: call check_meta(meta) before commit()")
        keep_derived = base is not None and not (
            self.replace
            and meta is not None
            and (base.model, base.h3_resolution) != (meta.model, meta.h3_resolution)
        )
        live = self._live_base()
        parts = copy.deepcopy(live.partitions) if live is not None else {}
        for p, rec in self.records.items():
            parts[p] = Partition(rec.key, [rec.file] if rec.file else [])
        derived = dict(base.derived) if keep_derived and base is not None else {}
        derived.update(self.derived)
        if meta is not None:
            model, dim, res, prt = meta.model, meta.dim, meta.h3_resolution, meta.partition_resolution
        else:
            assert base is not None
            model, dim, res, prt = base.model, base.dim, base.h3_resolution, base.partition_resolution
        return Manifest(
            generation=self.generation + 1,
            model=model,
            dim=dim,
            h3_resolution=res,
            partition_resolution=prt,
            partitions=dict(sorted(parts.items())),
            derived=derived,
            created=contract.utcnow(),
            command=self.command,
        )

    def pending_snapshot(self) -> contract.Snapshot:
        """:meth:`pending` as a reader sees it (pin it to build derived data from it)."""
        m = self.pending()
        return contract.Snapshot(self.db, m, tuple(self.db / f.path for f in m.files()))

    def commit(self) -> Manifest:
        """Publish the new generation (the one durable step), then sweep what nothing needs.

        Returns:
            The published manifest.
        """
        base = self.base
        if base is not None and not self.records and not self.derived and not self.replace:
            if self._journal is not None:
                self._journal.close()
            sweep(self.db, base, self._old_journals)  # nothing changed: no new generation
            self.published = base
            return base
        new = self.pending()
        dropped: list[str] = []
        if base is not None:
            old = {f.path for f in base.files()} | {p for d in base.derived.values() for p in d.files}
            old_derived = {p for d in base.derived.values() for p in d.files}
            gone_derived = old_derived - new.paths()
            new.retired = sorted((old - new.paths()) - gone_derived)
            dropped = sorted(gone_derived)
        contract.write_manifest(self.db, new)
        crash_point("published")
        self.published = new
        if self._journal is not None:
            self._journal.close()
        journals = [*self._old_journals, *([self._journal.path] if self._journal else [])]
        for rel in dropped:  # derived data of a replaced model: stale, removed now
            (self.db / rel).unlink(missing_ok=True)
        n = sweep(self.db, new, journals)
        crash_point("swept")
        log.info(
            "published %s generation %d (%d rows); swept %d file(s)", self.db, new.generation, new.rows, n
        )
        return new
