"""Trustworthy storage: generations published through one manifest, one writer at a time.

* :class:`Transaction` is how embeddings are written (builds, the global build, importers);
* :class:`DbLock` is the per-database writer lock (``DB/.lock``, ``flock``);
* :func:`publish_derived` publishes an index, pyramid level, label layer or map;
* :func:`write_shard_file` and :class:`ShardTarget` let worker processes write shards.

What is guaranteed: a kill at any moment leaves the previous or the new generation (files
are fsynced before they are renamed into place, the manifest last); a ``(h3, datetime)``
appears once per generation; readers that load the manifest see one whole generation; one
writer at a time per database on one machine. What is not: protection against the disk
changing published files (a rebuild or resume detects it by checksum), or locking across
hosts on network file systems.
"""

from embedder.storage.derived import derived_entry, derived_writer, origin, publish_derived
from embedder.storage.lock import DatabaseLockedError, DbLock, forget_inherited_locks, held_by_me, read_holder
from embedder.storage.shardfile import ShardTarget, entry_of, upsert, verify, write_shard_file
from embedder.storage.sweep import adopt, sweep
from embedder.storage.transaction import Transaction

__all__ = [
    "DatabaseLockedError",
    "DbLock",
    "ShardTarget",
    "Transaction",
    "adopt",
    "derived_entry",
    "derived_writer",
    "entry_of",
    "forget_inherited_locks",
    "held_by_me",
    "origin",
    "publish_derived",
    "read_holder",
    "sweep",
    "upsert",
    "verify",
    "write_shard_file",
]
