"""The out-of-core index of a real database against exact search: build time, recall, latency.

Run from the repository root::

    python -m bench.ondisk_db_bench              # the res-4 global database (~94k cells)
    python -m bench.ondisk_db_bench --res 3      # res 3, seconds

Builds the global database (``build_global_db``, the shipped default model), then its
out-of-core index as ``earthvec index DB --out-of-core`` does (:func:`index.ondisk_db.build_db_ondisk`,
default plan), and compares ``--queries`` random cells' top 10 at several ``nprobe`` with
FAISS ``IndexFlatIP`` over the same latest vectors. Also times one ``similar`` call (open,
query vector from Parquet, search, attributes of the hits). Written to
``bench_results/ondisk_db.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")

import numpy as np  # noqa: E402

from embedder import contract, h3grid  # noqa: E402


def latest_vectors(db: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Every cell's most recent vector: (cells uint64, vectors float32), in partition order."""
    from index.vectors import iter_latest

    tables = [t for _, t, _ in iter_latest(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])]
    cells = np.concatenate([np.asarray(t.column(contract.H3).to_numpy(), dtype=np.uint64) for t in tables])
    return cells, np.concatenate([contract.embeddings_matrix(t) for t in tables])


def measure(db: Path, *, queries: int = 200, nprobes: tuple[int, ...] = (4, 8, 16, 32)) -> dict[str, Any]:
    """Build the out-of-core index of ``db`` and compare its answers with exact search."""
    import faiss

    from index.ondisk_db import build_db_ondisk, open_db_ondisk, search_ondisk, similar_ondisk

    t = time.perf_counter()
    rec, _ = build_db_ondisk(db, rebuild=True)
    build_s = time.perf_counter() - t
    cells, x = latest_vectors(db)
    flat = faiss.IndexFlatIP(x.shape[1])
    flat.add(x)
    qi = np.random.default_rng(0).choice(len(x), min(queries, len(x)), replace=False)
    _, truth = flat.search(x[qi], 10)
    od, _ = open_db_ondisk(db)
    rows = []
    for npb in [n for n in nprobes if n <= od.index.nlist]:
        t = time.perf_counter()
        _, got = search_ondisk(od, x[qi], 10, nprobe=npb)
        ms = (time.perf_counter() - t) / len(qi) * 1e3
        recall = float(np.mean([len(set(cells[truth[i]]) & set(got[i])) / 10 for i in range(len(qi))]))
        rows.append({"nprobe": npb, "recall_at_10": round(recall, 4), "ms_per_query": round(ms, 3)})
    t = time.perf_counter()
    hits = similar_ondisk(db, h3grid.cell_to_str(int(cells[qi[0]])), 10)
    similar_ms = (time.perf_counter() - t) * 1e3
    return {
        "cells": rec.count,
        "shards": rec.shards,
        "factory": rec.factory,
        "default_nprobe": od.nprobe,
        "k_factor": od.k_factor,
        "build_s": round(build_s, 2),
        "queries": len(qi),
        "search": rows,
        "similar_ms": round(similar_ms, 1),
        "similar_rows": len(hits),
    }


def report(r: dict[str, Any]) -> str:
    """The result as a small table."""
    lines = [
        f"out-of-core index: {r['factory']}, {r['cells']:,} cells in {r['shards']} shards, built in "
        f"{r['build_s']:.1f} s; default nprobe {r['default_nprobe']}, k_factor {r['k_factor']}",
        f"{'nprobe':>7} {'recall@10':>10} {'ms/query':>9}   ({r['queries']} queries, batch, vs IndexFlatIP)",
    ]
    lines += [f"{s['nprobe']:>7} {s['recall_at_10']:>10.3f} {s['ms_per_query']:>9.3f}" for s in r["search"]]
    what = "open, query from Parquet, search, hit attributes"
    lines.append(f"one similar call ({what}): {r['similar_ms']:.0f} ms")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Build the global database, measure, print and write the JSON."""
    p = argparse.ArgumentParser(prog="python -m bench.ondisk_db_bench", description=__doc__.split("\n")[0])
    p.add_argument("--res", type=int, default=4, help="H3 resolution of the global database (default 4)")
    p.add_argument("--queries", type=int, default=200, help="query cells (default 200)")
    p.add_argument("--out", default="bench_results/ondisk_db.json", help="JSON file")
    a = p.parse_args(argv)
    from embedder.globe.build import build_global_db

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "db"
        t = time.perf_counter()
        build_global_db(db, res=a.res, progress=False)
        print(f"global database at res {a.res} built in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        r = {"res": a.res, **measure(db, queries=a.queries)}
    print(report(r))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(r, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
