"""Rows measured through earthvec's own API (``index.store``, ``index.search``, ``index.label``).

These need the index layer's public functions; when one is missing the row says so instead
of being skipped silently.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench.measure import Row, qps_batched, qps_single, recall_at_k, timed


def api_available() -> str | None:
    """``None`` when the API is importable, else the reason."""
    try:
        from index.filters import Filter  # noqa: F401
        from index.search import top_k  # noqa: F401
        from index.store import open_index  # noqa: F401
    except ImportError as exc:
        return f"earthvec index API not importable: {exc}"
    return None


class ApiSearch:
    """earthvec ``index.search.top_k`` over an opened database, answering row numbers."""

    def __init__(self, vi: Any, cells: np.ndarray) -> None:
        self.vi = vi
        self.order = np.argsort(cells)
        self.sorted_cells = cells[self.order]

    def rows_of(self, found_cells: np.ndarray) -> np.ndarray:
        """Benchmark row numbers of cells (-1 stays -1)."""
        c = np.asarray(found_cells, dtype=np.uint64)
        pos = np.clip(np.searchsorted(self.sorted_cells, c), 0, len(self.sorted_cells) - 1)
        return np.where(self.sorted_cells[pos] == c, self.order[pos], -1)

    def search(self, q: np.ndarray, k: int, flt: Any = None) -> np.ndarray:
        """Row numbers (nq, k) of earthvec's top-k, -1 padding."""
        from index.search import top_k

        hits = top_k(self.vi, q, k, flt)
        rows = np.asarray(hits.rows)
        cells = np.where(rows >= 0, self.vi.ids[np.maximum(rows, 0)], 0)
        return np.where(rows >= 0, self.rows_of(cells), -1)


def build_api_index(db: Path, factory: str) -> tuple[float, Any]:
    """Seconds to build the earthvec index of ``db`` with ``factory``, and the open index."""
    from index.store import open_index

    return timed(lambda: open_index(db, rebuild=True, factory=factory))


def set_knob(vi: Any, value: int) -> str:
    """Set ``nprobe`` (IVF) or ``efSearch`` (HNSW) on an open earthvec index; return its name."""
    import faiss

    ivf = faiss.try_extract_index_ivf(vi.index)
    if ivf is not None:
        ivf.nprobe = value
        return "nprobe"
    inner = vi.index
    if isinstance(inner, faiss.IndexIDMap):
        inner = faiss.downcast_index(inner.index)
    if isinstance(inner, faiss.IndexHNSW):
        inner.hnsw.efSearch = value
        return "efSearch"
    return ""


def api_rows(
    db: Path,
    factory: str,
    knob_value: int,
    cells: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    truth: np.ndarray,
    *,
    k: int = 10,
    single_queries: int = 300,
    log: Callable[[str], None] = print,
) -> tuple[Row, dict[str, Any], Any]:
    """Earthvec search row at raw FAISS's ``nprobe`` plus the filtered-query comparison.

    Returns:
        The row, a dict of filtered-query measurements, and the open index (for reuse).
    """
    log(f"  building the earthvec index of {db} ({factory}) ...")
    build_s, vi = build_api_index(db, factory)
    knob = set_knob(vi, knob_value)
    api = ApiSearch(vi, cells)
    found = api.search(q, k)
    rec = recall_at_k(found, truth, k)
    row = Row("earthvec API", f"{factory} (index.search.top_k)", knob, knob_value, rec)
    row.build_s = build_s
    row.qps_batch = qps_batched(lambda a: api.search(a, k), q)
    row.qps_single = qps_single(lambda a: api.search(a, k), q[:single_queries])
    row.reached_target = None
    row.note = "build = index.store.open_index(rebuild=True) from Parquet"
    row.extra = raw_pair(vi, q, k, single_queries)
    log(f"    -> recall {rec:.4f}, single {row.qps_single:,.0f}/s, batched {row.qps_batch:,.0f}/s")
    filt = filtered_queries(api, cells, x, q, k=k, log=log)
    return row, filt, vi


def raw_pair(vi: Any, q: np.ndarray, k: int, single_queries: int) -> dict[str, float]:
    """QPS of raw ``vi.index.search`` and of ``top_k`` on the same index, back to back.

    Timing both on one index, alternately, keeps other jobs on the machine from skewing
    the overhead (the raw FAISS row of the table was timed minutes earlier).
    """
    from index.search import top_k

    def raw(a: np.ndarray) -> Any:
        return vi.index.search(a, k)

    def api(a: np.ndarray) -> Any:
        return top_k(vi, a, k)

    out: dict[str, float] = {}
    for name, fn in (("raw", raw), ("api", api), ("raw2", raw), ("api2", api)):
        out[f"{name}_single"] = qps_single(fn, q[:single_queries])
        out[f"{name}_batch"] = qps_batched(fn, q)
    res = {
        "raw_single": max(out["raw_single"], out["raw2_single"]),
        "api_single": max(out["api_single"], out["api2_single"]),
        "raw_batch": max(out["raw_batch"], out["raw2_batch"]),
        "api_batch": max(out["api_batch"], out["api2_batch"]),
    }
    res["overhead_single"] = res["raw_single"] / res["api_single"] - 1
    res["overhead_batch"] = res["raw_batch"] / res["api_batch"] - 1
    return {key: round(v, 4 if key.startswith("overhead") else 1) for key, v in res.items()}


def filtered_queries(
    api: ApiSearch,
    cells: np.ndarray,
    x: np.ndarray,
    q: np.ndarray,
    *,
    k: int = 10,
    region_res: int = 7,
    n_queries: int = 100,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Single queries restricted to a small region vs the same queries unfiltered.

    The region of query ``i`` is the resolution-``region_res`` cell holding its exact nearest
    neighbour, so every region has rows; filtered recall is against a numpy oracle over the
    region's rows.
    """
    from embedder import h3grid
    from index.filters import Filter

    qs = q[:n_queries]
    top1 = (qs @ x.T).argmax(axis=1)
    regions = h3grid.cell_parents(cells[top1], region_res)
    flts = [Filter(region=h3grid.cell_to_str(int(r))) for r in regions]
    sizes, hits = [], []
    for i, r in enumerate(regions):
        lo, hi = h3grid.descendant_range(int(r), int(h3grid.cell_resolution(int(cells[0]))))
        inside = np.flatnonzero((cells >= np.uint64(lo)) & (cells <= np.uint64(hi)))
        sizes.append(len(inside))
        sims = x[inside] @ qs[i]
        hits.append(inside[np.argsort(-sims)[:k]])

    def run_filtered() -> list[np.ndarray]:
        return [api.search(qs[i : i + 1], k, flts[i])[0] for i in range(len(qs))]

    def run_plain() -> None:
        for i in range(len(qs)):
            api.search(qs[i : i + 1], k)

    t_f, found = min((timed(run_filtered) for _ in range(2)), key=lambda t: t[0])
    t_p = min(timed(run_plain)[0] for _ in range(2))
    rec = float(
        np.mean(
            [
                len(np.intersect1d(f[f >= 0], h)) / max(1, min(k, len(h)))
                for f, h in zip(found, hits, strict=True)
            ]
        )
    )
    out = {
        "region_resolution": region_res,
        "queries": len(qs),
        "rows_in_region_median": int(np.median(sizes)),
        "qps_filtered": round(len(qs) / t_f, 1),
        "qps_unfiltered": round(len(qs) / t_p, 1),
        "speedup": round(t_p / t_f, 2),
        "recall_in_region": round(rec, 4),
    }
    log(f"    filtered (res-{region_res} region, median {out['rows_in_region_median']} rows): {out}")
    return out


def label_map(
    db: Path, seeds: Path, out: Path, *, k: int = 5, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Time ``index.label.label_db`` writing a kNN label map of ``db``, warm and cold.

    Warm: the database's index is open (as in the explorer or a Python session), so the
    vectors are in RAM and only the cells' attributes and geometry are read from Parquet.
    The index is ``Flat``: labelling never searches it, and any structure holding raw
    vectors (Flat, HNSW, IVF-Flat) serves the same way; Flat is the quickest to build here.
    Cold: the database folder alone (every embedding decoded from Parquet).
    """
    try:
        from index.label import label_db
        from index.store import open_index
    except ImportError as exc:
        return {"missing": f"index.label not importable: {exc}"}
    t_open, vi = timed(lambda: open_index(db, factory="Flat"))
    t0 = time.perf_counter()
    res = label_db(vi, seeds, k=k, out=out)
    t_warm = time.perf_counter() - t0
    vi = None  # free the vectors before the cold run
    t_cold, res_cold = timed(lambda: label_db(db, seeds, k=k, out=out.with_name("cold-" + out.name)))
    acc = getattr(getattr(res, "cv", None), "accuracy", None)
    info = {
        "cells": int(res.n_cells),
        "seeds": int(len(getattr(res.seeds, "cells", []))),
        "k": k,
        "seconds": round(t_warm, 2),
        "index": "Flat (vectors in RAM)",
        "index_open_or_build_s": round(t_open, 2),
        "cold_seconds": round(t_cold, 2),
        "cold_cells": int(res_cold.n_cells),
        "cv_accuracy": None if acc is None else round(float(acc), 4),
    }
    log(f"    label map: {info}")
    return info
