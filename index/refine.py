"""Exact re-ranking of compressed-code candidates with vectors read from disk.

A compressed index (IVF with 4-bit PQ, RaBitQ or 8-bit codes) finds ``k * k_factor``
candidates per query by approximate scores; :func:`rerank` reads those candidates' stored
vectors and keeps the ``k`` with the largest exact inner products. The vectors need not be in
RAM: :class:`MmapVectors` memory-maps raw row files (float16 or float32, one file per shard,
or any ``.npy``), :class:`ParquetVectors` reads the rows' row groups from the database's
Parquet files. Candidates are addressed by *handles*: ``shard << SHARD_SHIFT | row`` (the ids
the out-of-core IVF of :mod:`index.ondisk` stores), so shards are written independently.

float16 storage halves the file and changes inner products of unit vectors by about 1e-4
(``tests/index/test_refine.py`` measures recall against the float32 oracle).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from embedder.errors import EarthvecError

SHARD_SHIFT = 40
"""Bits of a handle that number the row inside its shard (up to 2**40 rows a shard)."""

ROW_MASK = (1 << SHARD_SHIFT) - 1


class RefineError(EarthvecError, ValueError):
    """A vector file does not match the index (shape, dtype, missing shard)."""


def handles(shard: int, rows: np.ndarray) -> np.ndarray:
    """Handles (int64) of ``rows`` of ``shard``."""
    return (np.int64(shard) << np.int64(SHARD_SHIFT)) | np.asarray(rows, dtype=np.int64)


def split_handles(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(shard, row)`` arrays of handles."""
    h = np.asarray(h, dtype=np.int64)
    return h >> np.int64(SHARD_SHIFT), h & np.int64(ROW_MASK)


class VectorSource(Protocol):
    """Rows addressed by handles, returned as float32."""

    dim: int

    def take(self, h: np.ndarray) -> np.ndarray:
        """Vectors (len(h), dim) float32 of handles ``h`` (valid handles only)."""
        ...


class MmapVectors:
    """Memory-mapped raw row files, one per shard (shard ``i`` is ``paths[i]``).

    Args:
        paths: one file per shard: raw ``dtype`` rows (``.f16``/``.f32``) or ``.npy``.
        dim: vector dimension.
        dtype: ``float16`` or ``float32`` (ignored for ``.npy``, which say their own).
        rows: rows per shard (checked against the file sizes); ``None`` derives them.
    """

    def __init__(
        self,
        paths: Sequence[str | Path],
        dim: int,
        dtype: str = "float16",
        rows: Sequence[int] | None = None,
    ) -> None:
        self.dim = int(dim)
        self.maps: list[np.ndarray] = []
        for i, p in enumerate(paths):
            p = Path(p)
            if not p.exists():
                raise RefineError(f"vector file {p} is missing; rebuild the out-of-core index")
            if p.suffix == ".npy":
                m = np.load(p, mmap_mode="r")
            else:
                size = np.dtype(dtype).itemsize * self.dim
                n = p.stat().st_size // size
                m = np.memmap(p, dtype=dtype, mode="r", shape=(n, self.dim)) if n else np.zeros((0, self.dim))
            if m.ndim != 2 or m.shape[1] != self.dim or (rows is not None and len(m) != rows[i]):
                want = f"({rows[i] if rows is not None else '?'}, {self.dim})"
                raise RefineError(f"vector file {p} holds shape {m.shape}, the index expects {want}")
            self.maps.append(m)

    def __len__(self) -> int:
        return sum(len(m) for m in self.maps)

    @property
    def nbytes(self) -> int:
        """Bytes of the files."""
        return sum(int(m.nbytes) for m in self.maps)

    def take(self, h: np.ndarray) -> np.ndarray:
        """See :class:`VectorSource`. Rows are read in file order (sequential-ish page faults)."""
        out = np.empty((len(h), self.dim), dtype=np.float32)
        for s, sel, r in by_shard(h, len(self.maps)):
            order = np.argsort(r, kind="stable")
            out[sel[order]] = self.maps[s][r[order]]
        return out


def by_shard(h: np.ndarray, shards: int) -> Iterator[tuple[int, np.ndarray, np.ndarray]]:
    """``(shard, positions in h, rows)`` for each shard the handles ``h`` name.

    Raises:
        RefineError: a handle names a shard outside ``0 .. shards - 1``.
    """
    shard, row = split_handles(np.asarray(h, dtype=np.int64))
    for s in np.unique(shard):
        if s < 0 or s >= shards:
            raise RefineError(f"handle of shard {s} but only {shards} vector sources")
        sel = np.flatnonzero(shard == s)
        yield int(s), sel, row[sel]


class ParquetVectors:
    """Rows of Parquet files (a ``fixed_size_list<float>`` column), shard ``i`` = ``files[i]``.

    Reads only the row groups that hold requested rows (one column), so it serves exact
    re-ranking straight from a database's embeddings files, slower than :class:`MmapVectors`
    (a row group is decoded per hit, see ``bench/scale_bench.py``).
    """

    def __init__(self, files: Sequence[str | Path], column: str = "embedding") -> None:
        import pyarrow.parquet as pq

        self.files = [pq.ParquetFile(str(f)) for f in files]
        self.column = column
        self.starts: list[np.ndarray] = []
        dim = 0
        for f in self.files:
            sizes = [f.metadata.row_group(g).num_rows for g in range(f.metadata.num_row_groups)]
            self.starts.append(np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64))
            field = f.schema_arrow.field(column)
            dim = dim or int(getattr(field.type, "list_size", 0))
        if dim <= 0:
            raise RefineError(f"column {column!r} of {files[0] if files else '?'} is not a fixed-size list")
        self.dim = dim

    def take(self, h: np.ndarray) -> np.ndarray:
        """See :class:`VectorSource`."""
        out = np.empty((len(h), self.dim), dtype=np.float32)
        for s, sel, r in by_shard(h, len(self.files)):
            starts = self.starts[s]
            group = np.searchsorted(starts, r, side="right") - 1
            for g in np.unique(group):
                mine = group == g
                col = self.files[s].read_row_group(int(g), columns=[self.column]).column(0)
                flat = col.combine_chunks().values.to_numpy(zero_copy_only=False)
                mat = np.asarray(flat, dtype=np.float32).reshape(-1, self.dim)
                out[sel[mine]] = mat[r[mine] - starts[g]]
        return out


def rerank(q: np.ndarray, cand: np.ndarray, source: VectorSource, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each query's ``k`` candidates with the largest exact inner products.

    Args:
        q: (nq, d) float32 queries.
        cand: (nq, kk) candidate handles, ``-1`` for none.
        source: where the candidates' vectors are read.
        k: results per query.

    Returns:
        ``(scores (nq, k) float32, handles (nq, k) int64)``, best first; missing results
        have score ``-inf`` and handle ``-1``.
    """
    q = np.ascontiguousarray(q, dtype=np.float32)
    cand = np.asarray(cand, dtype=np.int64)
    nq, kk = cand.shape
    valid = cand >= 0
    uniq, inv = np.unique(cand[valid], return_inverse=True)
    vecs = source.take(uniq) if len(uniq) else np.zeros((0, q.shape[1]), np.float32)
    pos = np.zeros(cand.shape, dtype=np.int64)
    pos[valid] = inv
    scores = np.einsum("qd,qkd->qk", q, vecs[pos]) if len(uniq) else np.zeros(cand.shape, np.float32)
    scores = np.where(valid, scores, -np.inf).astype(np.float32)
    kq = min(k, kk)
    top = np.argpartition(-scores, kq - 1, axis=1)[:, :kq] if kq < kk else np.tile(np.arange(kk), (nq, 1))
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    top = np.take_along_axis(top, order, axis=1)
    s = np.take_along_axis(scores, top, axis=1)
    ids = np.where(np.isfinite(s), np.take_along_axis(cand, top, axis=1), -1)
    if kq < k:
        s = np.pad(s, ((0, 0), (0, k - kq)), constant_values=-np.inf)
        ids = np.pad(ids, ((0, 0), (0, k - kq)), constant_values=-1)
    return s, ids
