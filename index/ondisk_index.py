"""Opening and searching an out-of-core index folder written by :mod:`index.ondisk`.

The coarse quantiser is read into RAM; the merged inverted lists (``OnDiskInvertedLists``),
the shards' vectors and ids are memory-mapped, so opening costs milliseconds and RAM stays at
the quantiser whatever the size. :meth:`OnDiskIndex.search` takes the ``k * k_factor`` best
codes of ``nprobe`` lists and re-ranks them exactly (:func:`index.refine.rerank`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from embedder.contract import atomic_write_bytes
from index.plan_rules import IndexBuildError
from index.refine import MmapVectors, VectorSource, rerank, split_handles

MANIFEST = "ondisk.json"
PREFETCH_THREADS = 0
"""Threads ``OnDiskInvertedLists`` starts per search to prefetch lists (FAISS default 32):
starting them cost ~1-2 ms a call, 10x a single query's whole search, in ``bench`` runs."""


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON atomically."""
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def read_manifest(folder: str | Path) -> dict[str, Any]:
    """The ``ondisk.json`` of ``folder``.

    Raises:
        IndexBuildError: when it is missing.
    """
    path = Path(folder) / MANIFEST
    if not path.exists():
        raise IndexBuildError(f"{path} is missing; build the out-of-core index (build_ondisk) first")
    return dict(json.loads(path.read_text()))


@dataclass
class OnDiskIndex:
    """An opened out-of-core index: quantiser in RAM, lists and vectors memory-mapped.

    Attributes:
        folder: the index folder.
        index: the FAISS IVF whose inverted lists are an ``OnDiskInvertedLists``.
        vectors: where re-ranking reads the vectors: the shards' memory-mapped files, or any
            :class:`index.refine.VectorSource` given to :func:`open_ondisk`.
        ids: the shards' caller ids, memory-mapped (int64).
        nprobe: lists visited per query.
        k_factor: candidates re-ranked per result.
    """

    folder: Path
    index: Any
    vectors: VectorSource
    ids: Sequence[np.ndarray]
    nprobe: int
    k_factor: int
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def ntotal(self) -> int:
        """Vectors indexed."""
        return int(self.index.ntotal)

    def file_bytes(self) -> dict[str, int]:
        """Bytes on disk: ``lists`` (codes + handles), ``quantizer`` and ``vectors``, ``ids``."""
        m = self.manifest
        return {
            "lists": (self.folder / m["lists_file"]).stat().st_size,
            "quantizer": (self.folder / m["index_file"]).stat().st_size,
            "vectors": int(getattr(self.vectors, "nbytes", 0)),
            "ids": sum(int(a.nbytes) for a in self.ids),
        }

    def candidates(self, q: np.ndarray, n: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Approximate scores and handles of the ``n`` best codes per query."""
        import faiss as _faiss

        faiss: Any = _faiss  # the parameter classes are missing from faiss's type stubs

        params = faiss.SearchParametersIVF(nprobe=int(nprobe or self.nprobe))
        return self.index.search(np.ascontiguousarray(q, dtype=np.float32), int(n), params=params)

    def search(
        self, q: np.ndarray, k: int, *, nprobe: int | None = None, k_factor: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact inner products and caller ids of the best ``k`` among ``k * k_factor`` candidates.

        Returns:
            ``(scores (nq, k) float32, ids (nq, k) int64)``, best first, ``-1`` ids when fewer.
        """
        q = np.atleast_2d(np.asarray(q, dtype=np.float32))
        kf = int(k_factor or self.k_factor)
        _, cand = self.candidates(q, k * kf, nprobe)
        scores, h = rerank(q, cand, self.vectors, k)
        return scores, self.ids_of(h)

    def ids_of(self, h: np.ndarray) -> np.ndarray:
        """Caller ids of handles (``-1`` stays ``-1``)."""
        h = np.asarray(h, dtype=np.int64)
        out = np.full(h.shape, -1, dtype=np.int64)
        ok = h >= 0
        shard, row = split_handles(h[ok])
        vals = np.empty(len(shard), dtype=np.int64)
        for s in np.unique(shard):
            sel = shard == s
            vals[sel] = self.ids[int(s)][row[sel]]
        out[ok] = vals
        return out

    def tune(
        self,
        q: np.ndarray,
        truth: np.ndarray,
        *,
        k: int = 10,
        target: float = 0.95,
        nprobes: Sequence[int] = (4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256),
        k_factors: Sequence[int] = (2, 4, 8, 16, 32, 64),
        save: bool = False,
    ) -> tuple[int, int, float]:
        """Set the cheapest ``(nprobe, k_factor)`` whose recall@k against ``truth`` reaches ``target``.

        For each ``nprobe`` (increasing) the smallest ``k_factor`` reaching the target is
        kept; the pair with the fewest scanned codes plus re-ranked rows wins. When none
        reaches it, the most accurate pair is kept. With ``save`` the pair is written to
        ``ondisk.json`` (``search``), so :func:`open_ondisk` starts from it.

        Returns:
            ``(nprobe, k_factor, recall)``.
        """
        from index.calibrate import recall_at_k

        nlist = int(self.index.nlist) if hasattr(self.index, "nlist") else 1 << 30
        per_list = self.ntotal / max(1, nlist)
        best: tuple[float, int, int, float] | None = None
        top: tuple[float, int, int] = (-1.0, self.nprobe, self.k_factor)
        for npb in [v for v in nprobes if v <= nlist]:
            for kf in k_factors:
                _, ids = self.search(q, k, nprobe=npb, k_factor=kf)
                rec = recall_at_k(ids, truth, k)
                top = max(top, (rec, npb, kf))
                if rec >= target:
                    cost = npb * per_list + 20.0 * k * kf  # a re-ranked row ~ 20 scanned codes
                    if best is None or cost < best[0]:
                        best = (cost, npb, kf, rec)
                    break
            if best is not None and npb * per_list > best[0]:
                break
        rec, npb, kf = (best[3], best[1], best[2]) if best else top
        self.nprobe, self.k_factor = npb, kf
        if save:
            self.manifest["search"] = {"nprobe": npb, "k_factor": kf, f"recall_at_{k}": round(rec, 4)}
            write_json(self.folder / MANIFEST, self.manifest)
        return npb, kf, rec


def open_ondisk(folder: str | Path, vectors: VectorSource | None = None) -> OnDiskIndex:
    """Open an out-of-core index folder: lists and vectors are memory-mapped, not read.

    Args:
        folder: the index folder.
        vectors: where re-ranking reads vectors by handle (shard ``i``, row ``r``), e.g.
            :class:`index.refine.ParquetVectors` over the files the shards were read from;
            default: the vector files the shards wrote.

    Raises:
        IndexBuildError: no ``ondisk.json`` (the index was never merged), or the shards
            stored no vectors and none are given.
        RefineError: a vector file is missing or of the wrong size.
    """
    import faiss

    folder = Path(folder)
    m = read_manifest(folder)
    plan = m["plan"]
    index = faiss.read_index(str(folder / m["index_file"]), faiss.IO_FLAG_ONDISK_SAME_DIR)
    lists: Any = faiss.downcast_InvertedLists(faiss.extract_index_ivf(index).invlists)  # type: ignore[arg-type]
    lists.prefetch_nthread = PREFETCH_THREADS
    shards = m["shards"]
    if [s["shard"] for s in shards] != list(range(len(shards))):
        raise IndexBuildError(
            f"{folder / MANIFEST} lists shards {[s['shard'] for s in shards]}; expected 0..n-1"
        )
    if vectors is None:
        if plan["vector_dtype"] == "none":
            raise IndexBuildError(
                f"the shards in {folder} stored no vectors; pass vectors=ParquetVectors(files) "
                "(shard i = file i) to open_ondisk"
            )
        vectors = MmapVectors(
            [folder / s["vectors_file"] for s in shards],
            plan["dim"],
            plan["vector_dtype"],
            rows=[s["rows"] for s in shards],
        )
    ids = [np.memmap(folder / s["ids_file"], dtype=np.int64, mode="r") for s in shards]
    tuned = m.get("search", plan)
    return OnDiskIndex(folder, index, vectors, ids, int(tuned["nprobe"]), int(tuned["k_factor"]), m)
