"""Why ``IVF4096,PQ64x4fs,RFlat`` with inner product never passed recall@10 0.71, and the fix.

Run from the repository root::

    python -m bench.pq_diagnosis            # 1M x 128-d, the data of bench/search_bench.py
    python -m bench.pq_diagnosis --n 200000 # quicker

One k-means partition (4096 lists) is shared by every row, so only the codes and the metric
change. For each code type the table gives the share of the exact top-10 found among the
index's best ``10 * k_factor`` candidates: exact re-ranking (``RFlat``) cannot recover more,
so this is the recall of ``...,RFlat`` at that ``k_factor``. Then, on the *same* 4-bit PQ
codes decoded exactly (no fast-scan lookup-table rounding), the error of the inner product
estimated by scoring the codes with inner product and with L2, against the spread of the
true scores between the 10th and the 100th neighbour.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import TiledSet, load_real_vectors

K = 10
NLIST = 4096
K_FACTORS = (1, 4, 16, 32, 64)


def log(msg: str) -> None:
    """Progress to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def candidate_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Share of the exact top-K ids among the returned candidates."""
    return float(np.mean([len(np.intersect1d(f, t[:K])) / K for f, t in zip(found, truth, strict=True)]))


def quantizers(x: np.ndarray, sample: np.ndarray) -> dict[str, Any]:
    """One k-means partition in an inner-product and an L2 flat quantiser."""
    import faiss

    km = faiss.Kmeans(x.shape[1], NLIST, niter=20, seed=1, spherical=False)
    km.train(sample)
    out = {}
    for name, cls in (("ip", faiss.IndexFlatIP), ("l2", faiss.IndexFlatL2)):
        qz = cls(x.shape[1])
        qz.add(km.centroids)
        out[name] = qz
    return out


def make(kind: str, metric: str, qz: Any, d: int) -> Any:
    """An IVF over the shared quantiser: ``kind`` in pq4fs, pq4fsr, rabitq, rabitqfs, flat."""
    import faiss

    m = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    if kind.startswith("pq4fs"):
        index = faiss.IndexIVFPQFastScan(qz, d, NLIST, d // 2, 4, m)
        index.by_residual = kind == "pq4fsr"
    elif kind == "rabitq":
        index = faiss.IndexIVFRaBitQ(qz, d, NLIST, m)
    elif kind == "rabitqfs":
        index = faiss.IndexIVFRaBitQFastScan(qz, d, NLIST, m)
    else:
        index = faiss.IndexIVFFlat(qz, d, NLIST, m)
    return index


ROWS = [
    ("flat", "ip", "IVF4096,Flat, IP (coarse ceiling)"),
    ("flat", "l2", "IVF4096,Flat, L2 (coarse ceiling)"),
    ("pq4fs", "ip", "PQ64x4fs, IP  (the failing string)"),
    ("pq4fs", "l2", "PQ64x4fs, L2"),
    ("pq4fsr", "ip", "PQ64x4fsr, IP (residuals)"),
    ("pq4fsr", "l2", "PQ64x4fsr, L2 (residuals)"),
    ("rabitq", "ip", "RaBitQ, IP"),
    ("rabitqfs", "ip", "RaBitQfs, IP"),
]


def estimator_errors(
    x: np.ndarray, sample: np.ndarray, q: np.ndarray, truth: np.ndarray, qz: Any
) -> list[dict]:
    """Error of IP and L2 scoring of the same decoded PQ64x4 codes, raw and residual."""
    import faiss

    out = []
    ids = np.unique(truth[:, :100])
    pos = np.searchsorted(ids, truth[:, :100])
    xv = x[ids]
    for res in (False, True):
        index = faiss.IndexIVFPQ(qz, x.shape[1], NLIST, x.shape[1] // 2, 4, faiss.METRIC_INNER_PRODUCT)
        index.by_residual = res
        index.train(sample)
        index.add(x)
        index.make_direct_map()
        xh = np.vstack([index.reconstruct(int(i)) for i in ids])
        s = np.einsum("qd,qkd->qk", q, xv[pos])
        s_ip = np.einsum("qd,qkd->qk", q, xh[pos])
        s_l2 = 1.0 - 0.5 * ((q[:, None, :] - xh[pos]) ** 2).sum(-1)
        e = xv - xh
        out.append(
            {
                "codes": f"PQ64x4 {'residual' if res else 'raw'} (decoded exactly)",
                "error_std_ip": float(np.mean(np.std(s_ip - s, axis=1))),
                "error_std_l2": float(np.mean(np.std(s_l2 - s, axis=1))),
                "true_gap_10th_to_100th": float(np.mean(s[:, 9] - s[:, 99])),
                "mean_norm_error": float(np.linalg.norm(e, axis=1).mean()),
                "std_norm_error_sq": float(np.std((e**2).sum(1))),
            }
        )
        log(f"  {out[-1]}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Run, print the tables, write JSON."""
    import faiss

    p = argparse.ArgumentParser(prog="python -m bench.pq_diagnosis", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--nprobe", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--data", default="data/eurosat_ms")
    p.add_argument("--out", default="bench_results/pq_diagnosis.json")
    a = p.parse_args(argv)
    faiss.omp_set_num_threads(a.threads)
    ts = TiledSet(load_real_vectors(a.data), n=a.n, n_queries=a.queries)
    x, q = ts.matrix(), ts.queries
    truth = faiss.knn(q, x, 100, metric=faiss.METRIC_INNER_PRODUCT)[1]
    rng = np.random.default_rng(0)
    sample = x[np.sort(rng.choice(len(x), min(len(x), NLIST * 40), replace=False))]
    qzs = quantizers(x, sample)
    rows: list[dict[str, Any]] = []
    for kind, metric, label in ROWS:
        t = time.perf_counter()
        index = make(kind, metric, qzs[metric], x.shape[1])
        index.train(sample)
        index.add(x)
        _, found = index.search(q, K * max(K_FACTORS), params=faiss.SearchParametersIVF(nprobe=a.nprobe))
        row = {"codes": label, "kind": kind, "metric": metric, "build_s": round(time.perf_counter() - t, 1)}
        for kf in K_FACTORS:
            row[f"k_factor_{kf}"] = round(candidate_recall(found[:, : K * kf], truth), 4)
        rows.append(row)
        log(f"  {row}")
        del index
    errors = estimator_errors(x, sample, q, truth, qzs["ip"])
    refine = faiss.index_factory(x.shape[1], "IVF64,PQ64x4fs,RFlat", faiss.METRIC_INNER_PRODUCT)
    res = {
        "data": ts.describe(),
        "nprobe": a.nprobe,
        "factory_defaults": {
            "PQ64x4fs_by_residual": bool(
                faiss.extract_index_ivf(faiss.index_factory(128, "IVF64,PQ64x4fs")).by_residual
            ),
            "PQ64x4fsr_by_residual": bool(
                faiss.extract_index_ivf(faiss.index_factory(128, "IVF64,PQ64x4fsr")).by_residual
            ),
            "RFlat_k_factor": float(refine.k_factor),
        },
        "candidate_recall": rows,
        "estimator": errors,
        "faiss": faiss.__version__,
    }
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2))
    print(render(res))
    return 0


def render(res: dict[str, Any]) -> str:
    """The printed tables."""
    f = res["factory_defaults"]
    lines = [
        f"{res['data']['n']:,} x {res['data']['dim']}-d, {NLIST} lists, nprobe {res['nprobe']}: "
        f"share of the exact top-{K} among the best {K} x k_factor codes (= recall@{K} with RFlat)",
        f"factory: 'PQ64x4fs' by_residual={f['PQ64x4fs_by_residual']}, 'PQ64x4fsr' by_residual="
        f"{f['PQ64x4fsr_by_residual']}; RFlat k_factor default {f['RFlat_k_factor']:g}",
        f"{'codes':38s} " + " ".join(f"{'kf ' + str(kf):>7s}" for kf in K_FACTORS),
    ]
    for r in res["candidate_recall"]:
        lines.append(f"{r['codes']:38s} " + " ".join(f"{r[f'k_factor_{kf}']:7.3f}" for kf in K_FACTORS))
    lines.append(
        "error (std) of the estimated inner product of the true top-100, same codes scored two ways:"
    )
    lines.append(f"{'codes':38s} {'IP':>8s} {'L2':>8s} {'s10-s100':>9s} {'|x-x^|':>7s}")
    for e in res["estimator"]:
        lines.append(
            f"{e['codes']:38s} {e['error_std_ip']:8.4f} {e['error_std_l2']:8.4f} "
            f"{e['true_gap_10th_to_100th']:9.4f} {e['mean_norm_error']:7.3f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
