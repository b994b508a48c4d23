"""The search engines compared side by side, behind one small interface.

Every peer builds from the same float32 unit vectors (ids = row numbers), searches by inner
product (= cosine) and exposes one accuracy knob (``nprobe``, ``efSearch``, ``ef``,
``expansion_search``) that the benchmark sweeps to reach the target recall.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class Peer:
    """Base class: a named engine with an accuracy knob."""

    name: str
    knob: str = ""
    sweep: tuple[int, ...] = ()
    threads: int = 2
    batched: bool = True
    single_queries: int = 300
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def build(self, x: np.ndarray) -> None:
        """Index ``x`` (ids are row numbers)."""
        raise NotImplementedError

    def set_knob(self, value: int) -> None:
        """Set the accuracy parameter."""

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """Row ids (nq, k) of the top-k inner products."""
        raise NotImplementedError

    def memory_bytes(self) -> int | None:
        """Index size in bytes (serialised or reported by the library)."""
        return None

    def close(self) -> None:
        """Free the index."""


class FaissPeer(Peer):
    """Raw FAISS: ``index_factory`` + train + add, no earthvec code on the path.

    ``metric="l2"`` builds the index with L2 on the unit vectors (same exact ranking as inner
    product; PQ codes estimate it ~3x better, see ``bench/pq_diagnosis.py``). ``k_factor``
    sets the re-ranking depth of ``...,RFlat`` structures.
    """

    def __init__(
        self,
        name: str,
        factory: str,
        *,
        train_size: int = 262_144,
        metric: str = "ip",
        k_factor: int = 16,
        **kw: Any,
    ) -> None:
        import faiss

        knob = "nprobe" if "IVF" in factory else ("efSearch" if "HNSW" in factory else "")
        super().__init__(name, knob, **kw)
        self.factory = factory
        self.train_size = train_size
        self.metric = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.k_factor = k_factor
        self.ef_construction = int(kw.get("extra", {}).get("efConstruction", 0))
        faiss.omp_set_num_threads(self.threads)
        self.index: Any = None

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        import faiss

        index = faiss.index_factory(x.shape[1], self.factory, self.metric)
        hnsw = getattr(faiss.downcast_index(index), "hnsw", None)
        if hnsw is not None and self.ef_construction:
            hnsw.efConstruction = self.ef_construction
        if not index.is_trained:
            from index.factory import train_size_for

            rng = np.random.default_rng(0)
            n = min(len(x), self.train_size, train_size_for(self.factory, len(x)) or len(x))
            index.train(x[np.sort(rng.choice(len(x), n, replace=False))])
        if isinstance(index, faiss.IndexRefine):
            index.k_factor = self.k_factor  # re-rank k_factor * k compressed-code candidates
        if hnsw is not None:
            index.add(x)  # one call: several add() calls build a worse HNSW graph
        else:
            for s in range(0, len(x), 100_000):
                index.add(x[s : s + 100_000])
        self.index = index

    def set_knob(self, value: int) -> None:
        """See :class:`Peer`."""
        import faiss

        faiss.ParameterSpace().set_index_parameter(self.index, self.knob, value)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`."""
        return self.index.search(q, k)[1]

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`."""
        import faiss

        return int(len(faiss.serialize_index(self.index)))

    def close(self) -> None:
        """See :class:`Peer`."""
        self.index = None


class ScannPeer(Peer):
    """ScaNN: k-means tree, anisotropic hashing (2 dims per 4-bit block), exact reordering.

    On the 1M x 128 set (2000 leaves) reordering 100 candidates capped recall@10 at 0.92 with
    240 leaves searched; reordering 300 reached 0.952 with 120 (two ``bench/search_bench.py``
    runs).
    """

    def __init__(self, name: str, leaves: int, reorder: int = 300, **kw: Any) -> None:
        super().__init__(name, "leaves_to_search", **kw)
        self.leaves, self.reorder = leaves, reorder
        self.value = 10
        self.searcher: Any = None

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        import scann

        b = scann.scann_ops_pybind.builder(x, 10, "dot_product")
        b = b.tree(num_leaves=self.leaves, num_leaves_to_search=self.value, training_sample_size=250_000)
        b = b.score_ah(2, anisotropic_quantization_threshold=0.2).reorder(self.reorder)
        self.searcher = b.set_n_training_threads(self.threads).build()

    def set_knob(self, value: int) -> None:
        """See :class:`Peer`."""
        self.value = value

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`. One query: ``search``; several: ``search_batched_parallel``."""
        if len(q) == 1:
            ids, _ = self.searcher.search(q[0], final_num_neighbors=k, leaves_to_search=self.value)
            return np.asarray(ids, dtype=np.int64)[None, :]
        ids, _ = self.searcher.search_batched_parallel(q, final_num_neighbors=k, leaves_to_search=self.value)
        return np.asarray(ids, dtype=np.int64)

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`: the serialised searcher's files."""
        with tempfile.TemporaryDirectory() as d:
            self.searcher.serialize(d)
            return sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))

    def close(self) -> None:
        """See :class:`Peer`."""
        self.searcher = None


class HnswlibPeer(Peer):
    """hnswlib (inner-product space)."""

    def __init__(self, name: str, m: int, ef_construction: int, **kw: Any) -> None:
        super().__init__(name, "ef", **kw)
        self.m, self.efc = m, ef_construction
        self.index: Any = None

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        import hnswlib

        index = hnswlib.Index(space="ip", dim=x.shape[1])
        index.init_index(max_elements=len(x), M=self.m, ef_construction=self.efc, random_seed=0)
        index.set_num_threads(self.threads)
        index.add_items(x, np.arange(len(x)), num_threads=self.threads)
        self.index = index

    def set_knob(self, value: int) -> None:
        """See :class:`Peer`."""
        self.index.set_ef(value)

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`."""
        return self.index.knn_query(q, k=k, num_threads=self.threads)[0].astype(np.int64)

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`."""
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "h.bin")
            self.index.save_index(path)
            return os.path.getsize(path)

    def close(self) -> None:
        """See :class:`Peer`."""
        self.index = None


class UsearchPeer(Peer):
    """usearch (f32, inner product)."""

    def __init__(self, name: str, m: int, ef_construction: int, **kw: Any) -> None:
        super().__init__(name, "expansion_search", **kw)
        self.m, self.efc = m, ef_construction
        self.index: Any = None

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        from usearch.index import Index

        index = Index(ndim=x.shape[1], metric="ip", dtype="f32", connectivity=self.m, expansion_add=self.efc)
        index.add(np.arange(len(x), dtype=np.uint64), x, threads=self.threads)
        self.index = index

    def set_knob(self, value: int) -> None:
        """See :class:`Peer`."""
        self.index.expansion_search = value

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`."""
        m = self.index.search(q, k, threads=self.threads)
        keys = np.asarray(m.keys).reshape(len(q), -1).astype(np.int64)
        return keys

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`."""
        return int(self.index.memory_usage)

    def close(self) -> None:
        """See :class:`Peer`."""
        self.index = None


class NumpyPeer(Peer):
    """Exact search with numpy: blocked matrix product + argpartition."""

    def __init__(self, name: str = "numpy exact", **kw: Any) -> None:
        super().__init__(name, **kw)
        self.x: np.ndarray | None = None

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        self.x = x

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`."""
        assert self.x is not None
        out = np.empty((len(q), k), dtype=np.int64)
        for s in range(0, len(q), 64):
            sims = q[s : s + 64] @ self.x.T
            part = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            order = np.argsort(-np.take_along_axis(sims, part, axis=1), axis=1)
            out[s : s + 64] = np.take_along_axis(part, order, axis=1)
        return out

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`."""
        return None if self.x is None else int(self.x.nbytes)

    def close(self) -> None:
        """See :class:`Peer`."""
        self.x = None


class DuckDBPeer(Peer):
    """DuckDB brute force: ``ORDER BY array_cosine_similarity(...) DESC LIMIT k`` per query."""

    def __init__(self, name: str = "DuckDB SQL exact", **kw: Any) -> None:
        super().__init__(name, batched=False, single_queries=kw.pop("single_queries", 10), **kw)
        self.con: Any = None
        self.dim = 0

    def build(self, x: np.ndarray) -> None:
        """See :class:`Peer`."""
        import duckdb
        import pyarrow as pa

        self.dim = x.shape[1]
        con = duckdb.connect()
        con.execute(f"SET threads = {self.threads}")
        emb = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), self.dim)
        vec_table = pa.table({"id": pa.array(np.arange(len(x), dtype=np.int64)), "v": emb})
        con.register("vec_arrow", vec_table)
        con.execute(f"CREATE TABLE vec AS SELECT id, v::FLOAT[{self.dim}] AS v FROM vec_arrow")
        con.unregister("vec_arrow")
        self.con = con

    def search(self, q: np.ndarray, k: int) -> np.ndarray:
        """See :class:`Peer`."""
        out = np.empty((len(q), k), dtype=np.int64)
        sql = f"SELECT id FROM vec ORDER BY array_cosine_similarity(v, $q::FLOAT[{self.dim}]) DESC LIMIT {k}"
        for i, v in enumerate(q):
            rows = self.con.execute(sql, {"q": v.tolist()}).fetchall()
            out[i] = [r[0] for r in rows]
        return out

    def memory_bytes(self) -> int | None:
        """See :class:`Peer`."""
        row = self.con.execute("SELECT memory_usage_bytes FROM duckdb_memory() WHERE tag = 'IN_MEMORY_TABLE'")
        got = row.fetchone()
        return int(got[0]) if got else None

    def close(self) -> None:
        """See :class:`Peer`."""
        if self.con is not None:
            self.con.close()
        self.con = None
