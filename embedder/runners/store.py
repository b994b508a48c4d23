"""Where distributed builds write: a local database folder or any pyarrow filesystem URI.

Workers of a cluster write shard files themselves (the driver never receives the vectors),
so the database root must be reachable from every worker: a shared folder (NFS, a mounted
bucket) given as a path, or a URI pyarrow opens (``s3://bucket/db``, ``gs://...``,
``hdfs://...``, ``abfs://...``, ``file:///...``). Names and layout come from
:mod:`embedder.contract`; a local path goes through the contract's own atomic writer, so
the files are the ones a single-machine build writes.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path, PurePosixPath
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from embedder import contract
from embedder.contract.io import COMPRESSION
from embedder.errors import ModelMismatchError


def is_uri(root: str | Path) -> bool:
    """True for ``scheme://...`` roots (opened with pyarrow), False for plain paths."""
    return isinstance(root, str) and "://" in root


class ShardStore:
    """A database root (path or URI) with the few operations a distributed build needs.

    Args:
        root: database folder, or a URI pyarrow's ``FileSystem.from_uri`` understands.

    Relative names (``embeddings/h3_partition=.../part-KEY.parquet``) are the contract's
    layout below the root; they are the shard names of a build.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = str(root)
        self._fs: Any = None
        self._base = ""
        if is_uri(root):
            from pyarrow import fs

            self._fs, self._base = fs.FileSystem.from_uri(str(root))

    def __getstate__(self) -> dict[str, Any]:
        return {"root": self.root}  # filesystems are re-opened on each worker

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"])  # type: ignore[misc]

    @property
    def local(self) -> Path | None:
        """The root as a local path (None for a URI)."""
        return None if self._fs is not None else Path(self.root)

    def _full(self, rel: str) -> str:
        return str(PurePosixPath(self._base) / rel)

    def exists(self, rel: str) -> bool:
        """Whether the file ``rel`` exists."""
        if self.local is not None:
            return (self.local / rel).exists()
        from pyarrow import fs

        return bool(self._fs.get_file_info(self._full(rel)).type != fs.FileType.NotFound)

    def write_table(self, rel: str, table: pa.Table) -> None:
        """Write a Parquet file atomically (a temporary name, then a rename)."""
        if self.local is not None:
            contract.write_table_atomic(table, self.local / rel)
            return
        final = self._full(rel)
        tmp = str(PurePosixPath(final).with_name(f".{PurePosixPath(final).name}.{uuid.uuid4().hex}.tmp"))
        self._fs.create_dir(str(PurePosixPath(final).parent), recursive=True)
        try:
            pq.write_table(table, tmp, filesystem=self._fs, compression=COMPRESSION)
            self._fs.move(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                self._fs.delete_file(tmp)
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        """Write a small file atomically."""
        if self.local is not None:
            contract.atomic_write_bytes(self.local / rel, data)
            return
        final = self._full(rel)
        tmp = str(PurePosixPath(final).with_name(f".{PurePosixPath(final).name}.{uuid.uuid4().hex}.tmp"))
        self._fs.create_dir(str(PurePosixPath(final).parent), recursive=True)
        with self._fs.open_output_stream(tmp) as out:
            out.write(data)
        self._fs.move(tmp, final)

    def list_dir(self, rel: str) -> list[str]:
        """Names of the visible files directly in folder ``rel`` (empty when it is missing)."""
        if self.local is not None:
            d = self.local / rel
            return sorted(p.name for p in d.iterdir() if not p.name.startswith(".")) if d.is_dir() else []
        from pyarrow import fs

        sel = fs.FileSelector(self._full(rel), allow_not_found=True)
        return sorted(
            PurePosixPath(i.path).name
            for i in self._fs.get_file_info(sel)
            if i.type == fs.FileType.File and not PurePosixPath(i.path).name.startswith(".")
        )

    def delete(self, rel: str) -> None:
        """Remove the file ``rel`` (no error when it is missing)."""
        if self.local is not None:
            (self.local / rel).unlink(missing_ok=True)
        elif self.exists(rel):
            self._fs.delete_file(self._full(rel))

    def delete_dir(self, rel: str) -> None:
        """Remove the folder ``rel`` and everything in it (no error when it is missing)."""
        if self.local is not None:
            import shutil

            shutil.rmtree(self.local / rel, ignore_errors=True)
        elif self.exists(rel):
            self._fs.delete_dir(self._full(rel))

    def ensure_compatible(self, meta: contract.DatasetMeta, fix: str) -> None:
        """Refuse to add rows of ``meta`` to a database of another model or resolution.

        Raises:
            ModelMismatchError: as :func:`embedder.contract.ensure_compatible`.
        """
        if self.local is not None:
            contract.ensure_compatible(self.local, meta, fix)
            return
        from pyarrow import fs

        sel = fs.FileSelector(self._full(contract.EMBEDDINGS_DIR), recursive=True, allow_not_found=True)
        files = sorted(
            i.path
            for i in self._fs.get_file_info(sel)
            if i.type == fs.FileType.File and i.path.endswith(".parquet") and "/." not in i.path
        )
        for f in files:
            old = contract.validate_schema(pq.read_schema(f, filesystem=self._fs), f)
            if not old.compatible(meta):
                raise ModelMismatchError(
                    f"{self.root} already holds embeddings from {old.model} at H3 res "
                    f"{old.h3_resolution}; this build uses {meta.model} at res {meta.h3_resolution}. "
                    f"Never mix model versions: {fix}"
                )


def shard_name(parent_hex: str, key: str) -> str:
    """The contract's relative file name of one shard (the shard's deterministic name)."""
    return contract.shard_path(Path("."), parent_hex, key).as_posix()
