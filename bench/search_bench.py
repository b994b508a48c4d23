"""The search benchmark: earthvec vs raw FAISS, hnswlib, usearch, DuckDB and numpy, one run.

Run from the repository root::

    python -m bench.search_bench            # full: 1M x 128 (+ 10M compressed, 2M label map)
    python -m bench.search_bench --quick    # 100k smoke run (CI), a minute or two

Every engine indexes the same vectors (``bench/data.py`` says how they are made from real
EuroSAT pixels) and answers the same 1000 held-out queries; recall@10 is measured against
exact results (FAISS ``IndexFlatIP``). Approximate engines sweep their accuracy knob up to
the target recall (0.95) and are timed there, so QPS compare at equal recall. A table is
printed and everything is written to ``bench_results/search.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import report
from bench.data import TiledSet, load_real_vectors
from bench.measure import Row, recall_at_k, run_peer, timed
from bench.peers import DuckDBPeer, FaissPeer, HnswlibPeer, NumpyPeer, Peer, ScannPeer, UsearchPeer

IVF_SWEEP = (1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
EF_SWEEP = (10, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
LEAVES_SWEEP = (5, 10, 15, 20, 30, 40, 60, 80, 120, 160, 240)
REFINE_PQ_ENGINE = "FAISS IVF-PQ4fsr-L2+RFlat"


def log(msg: str) -> None:
    """Progress to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.search_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="100k vectors, 200 queries, no 10M path")
    p.add_argument("--n", type=int, help="base vectors (default 1,000,000; quick 100,000)")
    p.add_argument("--queries", type=int, help="held-out queries (default 1000; quick 200)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target", type=float, default=0.95, help="recall@k to reach")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--graph-m", type=int, default=32, help="M of the HNSW peers")
    p.add_argument("--ef-construction", type=int, default=100, help="of the HNSW peers")
    p.add_argument("--big-n", type=int, help="compressed-path vectors (default 10M; quick 0 = skip)")
    p.add_argument(
        "--big-memory-gib",
        type=float,
        default=3.0,
        help="memory budget given to the compressed build (the raw 10M, 4.8 GiB, do not fit)",
    )
    p.add_argument("--label-n", type=int, help="cells of the label map (default 2M; quick 200k)")
    p.add_argument(
        "--peers",
        default="all",
        help="comma list of: ivf,hnsw,hnswlib,usearch,scann,pq (compressed),refine (PQ/RaBitQ + exact "
        "re-ranking),flat,numpy,duckdb,api (or all)",
    )
    p.add_argument("--data", default="data/eurosat_ms", help="EuroSAT-MS folder (manifest.csv)")
    p.add_argument("--out", default="bench_results/search.json", help="JSON file or folder")
    p.add_argument("--cache", default="bench_results/cache", help="databases written for the API rows")
    a = p.parse_args(argv)
    a.n = a.n or (100_000 if a.quick else 1_000_000)
    a.queries = a.queries or (200 if a.quick else 1000)
    a.big_n = (0 if a.quick else 10_000_000) if a.big_n is None else a.big_n
    a.label_n = a.label_n or (200_000 if a.quick else 2_000_000)
    a.peers = (
        {"ivf", "hnsw", "hnswlib", "usearch", "scann", "pq", "refine", "flat", "numpy", "duckdb", "api"}
        if a.peers == "all"
        else set(a.peers.split(","))
    )
    return a


def machine() -> dict[str, Any]:
    """Facts about the machine and libraries, and its load (other jobs skew timings)."""
    import duckdb
    import faiss
    import hnswlib  # noqa: F401
    import usearch

    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "faiss": faiss.__version__,
        "usearch": usearch.__version__,
        "duckdb": duckdb.__version__,
        "numpy": np.__version__,
        "scann": _version("scann"),
        "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
    }


def _version(dist: str) -> str | None:
    """Installed version of ``dist`` (``None`` when missing)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def exact_truth(x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row ids by inner product (FAISS IndexFlatIP)."""
    import faiss

    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    return index.search(q, k)[1]


def graph_peers(a: argparse.Namespace) -> list[tuple[Peer, str]]:
    """The HNSW-graph engines, same M and efConstruction."""
    m, efc, th = a.graph_m, a.ef_construction, a.threads
    out: list[tuple[Peer, str]] = []
    if "hnsw" in a.peers:
        out.append(
            (
                FaissPeer(
                    "FAISS HNSW", f"HNSW{m}", sweep=EF_SWEEP, threads=th, extra={"efConstruction": efc}
                ),
                f"HNSW{m} efC{efc}",
            )
        )
    if "hnswlib" in a.peers:
        out.append((HnswlibPeer("hnswlib", m, efc, sweep=EF_SWEEP, threads=th), f"M{m} efC{efc}"))
    if "usearch" in a.peers:
        out.append((UsearchPeer("usearch", m, efc, sweep=EF_SWEEP, threads=th), f"f32 M{m} efC{efc}"))
    if "scann" in a.peers and _version("scann"):  # no wheel for this platform: row left out
        leaves = max(100, int(2 * a.n**0.5))  # 2000 at 1M
        cfg = f"tree {leaves} leaves, AH 2 dims/block, reorder 300"
        out.append((ScannPeer("ScaNN", leaves, 300, sweep=LEAVES_SWEEP, threads=th), cfg))
    return out


def refine_peers(a: argparse.Namespace, nlist: int) -> list[tuple[Peer, str]]:
    """Compressed codes + exact re-ranking (RFlat, k_factor 8): the fixed PQ path and RaBitQ.

    ``PQ<d/2>x4fsr`` (residuals) scored by L2 on the unit vectors: the estimate that ranks
    well (``bench/pq_diagnosis.py``); RaBitQ is scored by inner product (its estimator is
    unbiased).
    """
    th, d = a.threads, 128
    pq = f"IVF{nlist},PQ{d // 2}x4fsr,RFlat"
    rq = f"IVF{nlist},RaBitQfs,RFlat"
    return [
        (
            FaissPeer(REFINE_PQ_ENGINE, pq, sweep=IVF_SWEEP, threads=th, metric="l2", k_factor=8),
            pq + " L2 kf8",
        ),
        (FaissPeer("FAISS IVF-RaBitQfs+RFlat", rq, sweep=IVF_SWEEP, threads=th, k_factor=8), rq + " kf8"),
    ]


def all_peers(a: argparse.Namespace, ivf_factory: str) -> list[tuple[Peer, str]]:
    """Every engine of the run with its configuration text, in running order."""
    from index import factory as fac

    th = a.threads
    out: list[tuple[Peer, str]] = []
    if "ivf" in a.peers:
        out.append((FaissPeer("FAISS IVF", ivf_factory, sweep=IVF_SWEEP, threads=th), ivf_factory))
    out += graph_peers(a)
    if "refine" in a.peers:
        out += refine_peers(a, fac.nlist_for(a.n))
    if "pq" in a.peers:  # every rung of the compressed ladder: memory against recall
        for f, _why in fac.compressed_ladder(a.n, 128):
            name = "FAISS IVF-" + f.split(",", 1)[1].replace("PQ64x4fsr", "PQ4fsr")
            out.append((FaissPeer(name, f, sweep=IVF_SWEEP, threads=th), f))
    if "flat" in a.peers:
        out.append((FaissPeer("FAISS Flat exact", "Flat", threads=th, single_queries=50), "IndexFlatIP"))
    if "numpy" in a.peers:
        out.append((NumpyPeer(threads=th, single_queries=30), "matmul + argpartition"))
    if "duckdb" in a.peers:
        n_single = 5 if a.n >= 500_000 else 20
        out.append(
            (DuckDBPeer(threads=th, single_queries=n_single), "array_cosine_similarity ORDER BY LIMIT")
        )
    return out


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write JSON."""
    import faiss

    from index import factory as fac

    a = parse_args(argv)
    faiss.omp_set_num_threads(a.threads)
    t_start = time.perf_counter()
    results: dict[str, Any] = {
        "machine": machine(),
        "args": {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(a).items()},
    }
    log(f"loading real EuroSAT patch vectors from {a.data}")
    real = load_real_vectors(a.data)
    ts = TiledSet(real, n=a.n, n_queries=a.queries)
    results["data"] = ts.describe()
    t_gen, x = timed(ts.matrix)
    q = ts.queries
    log(f"base {x.shape} generated in {t_gen:.1f} s; sigma {ts.sigma:.4f}")
    t0 = time.perf_counter()
    truth = exact_truth(x, q, a.k)
    t_gt = time.perf_counter() - t0
    results["data"]["generate_s"] = round(t_gen, 1)
    results["data"]["ground_truth_s"] = round(t_gt, 1)
    plan = fac.plan_index(a.n, 128)
    results["plan"] = {
        "factory": plan.factory,
        "reason": plan.reason,
        "bytes_per_vector_estimate": plan.bytes_per_vector,
    }
    log(f"earthvec plan for {a.n:,} x 128: {plan.factory} ({plan.reason})")
    rows: list[Row] = []
    out = Path(a.out)
    if out.suffix != ".json":  # a folder, as in ``earthvec bench --out bench_results``
        out = out / "search.json"

    def save(final: bool = False) -> None:
        results["rows"] = [r.to_dict() for r in rows]
        results["summary"] = report.summary(results, a.target)
        results["machine"]["load_average_now"] = [round(v, 2) for v in os.getloadavg()]
        results["total_s"] = round(time.perf_counter() - t_start, 1)
        results["complete"] = final
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(results, indent=2, default=str))
        os.replace(tmp, out)

    ivf_factory = plan.factory if "IVF" in plan.factory else f"IVF{fac.nlist_for(a.n)},Flat"
    engine = "FAISS HNSW" if "HNSW" in plan.factory and "IVF" not in plan.factory else "FAISS IVF"
    api_factory = plan.factory if plan.factory != "Flat" else ivf_factory
    results["plan"]["engine"] = engine if plan.factory != "Flat" else "FAISS IVF"
    for peer, cfg in all_peers(a, ivf_factory):
        target = a.target if peer.knob else 1.0
        rows.append(run_peer(peer, cfg, x, q, truth, k=a.k, target=target, log=log))
        save()
    if "hnsw" in a.peers:
        results["hnsw_batched_add"] = hnsw_add_check(x[: min(a.n, 200_000)], q, a.k)
        save()
    if "api" in a.peers:
        api_part(a, ts, x, q, truth, rows, results, api_factory, save)
    del x
    if a.big_n:
        results["compressed"] = compressed_path(a, real)
    save(final=True)
    print(report.render(results))
    log(f"wrote {out} in {results['total_s']:.0f} s total")
    return 0


def hnsw_add_check(x: np.ndarray, q: np.ndarray, k: int, ef: int = 64) -> dict[str, Any]:
    """Recall of FAISS HNSW32 (efConstruction 40) filled by 1, 2 and 10 ``add`` calls."""
    import faiss

    log(f"  FAISS HNSW filled by several add() calls ({len(x):,} vectors) ...")
    truth = exact_truth(x, q, k)
    out: dict[str, Any] = {"n": len(x), "efConstruction": 40, "efSearch": ef}
    for calls in (1, 2, 10):
        index = faiss.IndexHNSWFlat(x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 40
        t0 = time.perf_counter()
        for part in np.array_split(np.arange(len(x)), calls):
            index.add(x[part])
        build = time.perf_counter() - t0
        index.hnsw.efSearch = ef
        out[f"recall_{calls}_calls"] = round(recall_at_k(index.search(q, k)[1], truth, k), 4)
        out[f"build_s_{calls}_calls"] = round(build, 1)
    log(f"    {out}")
    return out


def api_part(
    a: argparse.Namespace,
    ts: TiledSet,
    x: np.ndarray,
    q: np.ndarray,
    truth: np.ndarray,
    rows: list[Row],
    results: dict[str, Any],
    factory: str,
    save: Callable[[], None],
) -> None:
    """Earthvec API rows: search overhead, filtered queries, label map, streamed build."""
    from bench import api, db
    from index import factory as fac

    why = api.api_available()
    if why:
        results["api"] = {"missing": why}
        log(why)
        return
    cache = Path(a.cache)
    tag = f"n{a.n}-q{a.queries}"
    base_db = cache / f"db-{tag}"
    cells = ts.cells()
    if not (base_db / "embeddings").exists():
        log(f"writing the {a.n:,}-row benchmark database {base_db}")
        tmp = base_db.with_name(base_db.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        t_w, _ = timed(lambda: db.write_rows(tmp, ts, cells, 0, ts.n, "a"))
        tmp.rename(base_db)
        results.setdefault("api", {})["write_parquet_s"] = round(t_w, 1)
    shutil.rmtree(base_db / "index", ignore_errors=True)
    raw_engine = "FAISS HNSW" if "HNSW" in factory and "IVF" not in factory else "FAISS IVF"
    raw = next((r for r in rows if r.engine == raw_engine), None)
    knob = raw.knob_value if raw and raw.knob_value else 16
    row, filt, vi = api.api_rows(base_db, factory, int(knob), cells, x, q, truth, k=a.k, log=log)
    rows.append(row)
    info = results.setdefault("api", {})
    info["filtered"] = filt
    if raw is not None and raw.qps_single and raw.qps_batch and row.qps_single and row.qps_batch:
        info["overhead_vs_raw_faiss_row"] = {  # vs the raw row timed minutes earlier
            "engine": raw_engine,
            "knob": f"{raw.knob}={knob}",
            "single": round(raw.qps_single / row.qps_single - 1, 4),
            "batched": round(raw.qps_batch / row.qps_batch - 1, 4),
        }
    if row.extra:  # raw FAISS and top_k on the same index, timed back to back
        info["overhead_vs_raw_faiss"] = {
            "engine": "the earthvec index searched by raw FAISS",
            "knob": f"{row.knob}={knob}",
            "single": row.extra["overhead_single"],
            "batched": row.extra["overhead_batch"],
            **row.extra,
        }
    del vi
    save()
    ivf = factory if "IVF" in factory else f"IVF{fac.nlist_for(a.n)},Flat"  # adds block by block
    info["streamed_build"] = streamed_build(base_db, ivf, q, truth, ts)
    save()
    info["label_map"] = label_map_part(a, ts, base_db, cache, tag)
    save()


def streamed_build(
    db_path: Path, factory: str, q: np.ndarray, truth: np.ndarray, ts: TiledSet
) -> dict[str, Any]:
    """``index.factory.build_from_blocks`` from the Parquet files (memory-bounded)."""
    from index import factory as fac

    log("  streamed build from Parquet (index.factory.build_from_blocks) ...")
    t, built = timed(lambda: fac.build_from_blocks(fac.parquet_blocks(db_path), factory=factory))
    truth_cells = ts.cells()[truth].astype(np.int64)  # the index's ids are H3 cells
    name, value, rec = fac.calibrate(built.index, q, truth_cells, k=10, target=0.95)
    out = {
        "factory": built.plan.factory,
        "seconds": round(t, 1),
        "train_s": round(built.train_seconds, 1),
        "add_s": round(built.add_seconds, 1),
        "calibrated": {name: value, "recall": round(rec, 4)},
        "peak_rows_in_ram": "one Parquet batch (65,536 rows) + the training sample",
    }
    log(f"    {out}")
    return out


def label_map_part(
    a: argparse.Namespace, ts: TiledSet, base_db: Path, cache: Path, tag: str
) -> dict[str, Any]:
    """A kNN label map over ``label_n`` cells (the base DB plus more tiled rows)."""
    from bench import api, db

    big = TiledSet(ts.real, n=a.label_n, n_queries=a.queries, block=ts.block)
    lab_db = cache / f"labeldb-n{a.label_n}-{tag}"
    if not (lab_db / "embeddings").exists():
        log(f"writing the {a.label_n:,}-cell label-map database {lab_db}")
        tmp = lab_db.with_name(lab_db.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        cells = big.cells()
        if a.label_n >= a.n and np.array_equal(cells[: a.n], ts.cells()):
            db.link_rows(base_db, tmp)
            db.write_rows(tmp, big, cells, a.n, a.label_n, "b")
        else:
            db.write_rows(tmp, big, cells, 0, a.label_n, "a")
        tmp.rename(lab_db)
    seeds = cache / f"seeds-{a.label_n}.csv"
    if not seeds.exists():
        db.write_seeds(seeds, big, big.cells(), 500)
    shutil.rmtree(lab_db / "predictions", ignore_errors=True)
    out = cache / f"labelmap-{a.label_n}.parquet"
    return api.label_map(lab_db, seeds, out, log=log)


def compressed_path(a: argparse.Namespace, real: Any) -> dict[str, Any]:
    """``big_n`` vectors streamed block by block into the structure chosen for a small budget."""
    import faiss

    from index import factory as fac

    budget = int(a.big_memory_gib * 2**30)
    ts = TiledSet(real, n=a.big_n, n_queries=a.queries)
    plan = fac.plan_index(a.big_n, 128, budget)
    small = fac.compressed_factory(a.big_n, 128, budget)
    if "Flat" in plan.factory and small:  # a smoke-test size: take the compressed structure anyway
        plan = fac.plan_index(a.big_n, 128, override=small[0])
    log(f"compressed path: {a.big_n:,} vectors, budget {a.big_memory_gib} GiB -> {plan.factory}")
    out: dict[str, Any] = {
        "n": a.big_n,
        "budget_gib": a.big_memory_gib,
        "factory": plan.factory,
        "reason": plan.reason,
        "raw_gib": round(a.big_n * 512 / 2**30, 2),
    }
    q = ts.queries

    def truth_pass() -> np.ndarray:
        heap = faiss.ResultHeap(len(q), a.k, keep_max=True)
        for start, _stop, xb in ts.blocks():
            d, i = faiss.knn(q, xb, a.k, metric=faiss.METRIC_INNER_PRODUCT)
            heap.add_result(d, i + start)
        heap.finalize()
        return heap.I

    t_gt, truth = timed(truth_pass)
    out["ground_truth_s"] = round(t_gt, 1)
    log(f"  exact truth streamed in {t_gt:.0f} s")

    def source() -> Any:
        return ((np.arange(s, e, dtype=np.int64), xb) for s, e, xb in ts.blocks())

    t_b, built = timed(lambda: fac.build_from_blocks(source, factory=plan.factory, n=a.big_n, dim=128))
    out.update(
        build_s=round(t_b, 1),
        train_s=round(built.train_seconds, 1),
        add_s=round(built.add_seconds, 1),
        bytes_per_vector=round(len(faiss.serialize_index(built.index)) / a.big_n, 1),
    )
    log(f"  built in {t_b:.0f} s")
    name, value, rec = fac.calibrate(built.index, q, truth, k=a.k, target=a.target, values=IVF_SWEEP)
    from bench.measure import qps_batched, qps_single

    out.update(
        knob=name,
        knob_value=value,
        recall=round(rec, 4),
        qps_batch=round(qps_batched(lambda z: built.index.search(z, a.k), q), 1),
        qps_single=round(qps_single(lambda z: built.index.search(z, a.k), q[:200]), 1),
    )
    _, found = built.index.search(q, a.k)
    out["recall_check"] = round(recall_at_k(found, truth, a.k), 4)
    log(f"  {out}")
    return out


if __name__ == "__main__":
    raise SystemExit(main())
