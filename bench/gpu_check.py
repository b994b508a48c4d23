"""On a GPU machine: run the GPU build and index paths and check them against the CPU ones.

Run from the repository root (needs ``faiss-gpu-cu12``, or a cuVS build of FAISS for CAGRA;
the embedder check needs CUDA torch)::

    python -m bench.gpu_check                 # 200k real-derived 128-d vectors, a few minutes
    python -m bench.gpu_check --n 1000000

Checks and their tolerances (GPU float arithmetic differs in summation order; near-ties
between neighbours may swap, so ids are compared as recall, scores as absolute differences):

1. ``knn``: exact search, ``faiss.knn_gpu`` against CPU ``IndexFlatIP``: recall@10 of the GPU
   ids against the CPU ids >= 0.999 and max |score difference| <= 1e-4.
2. ``ivf_flat``: the CPU-trained ``IVF,Flat`` copied to the GPU, same ``nprobe``: recall@10
   against the CPU answers >= 0.99, max |score difference| <= 1e-4.
3. ``ivf_gpu_build``: ``IVF,PQ32`` trained and filled on the GPU (``index.gpu.build_ivf_gpu``)
   then searched on the CPU: recall@10 against exact within 0.02 of the same structure built
   on the CPU.
4. ``ondisk_gpu_kmeans``: the out-of-core index trained with GPU k-means
   (``index.ondisk.train_ondisk(gpu=True)``): recall@10 at the CPU build's tuned
   ``(nprobe, k_factor)`` within 0.02 of the CPU build's.
5. ``cagra`` (FAISS with cuVS only): recall@10 of the GPU search >= 0.95 at ``itopk`` 128, and
   the CPU ``IndexHNSWCagra`` converted from it within 0.03 of the GPU's recall at efSearch 128.
6. ``embedder`` (CUDA torch only): the EuroSAT chips embedded by ``earthvec-mm`` in a build
   on the GPU and on the CPU (``CUDA_VISIBLE_DEVICES=``), both float32 (the default on every
   device, TF32 off): the same model version in both, every component within 1e-4 of the CPU
   vector's (the tolerance under which the two share one ``name@version``) and top-5
   neighbour overlap >= 0.8.

Prints one line per check and writes ``bench_results/gpu_check.json``; exits 1 if any fails.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np


def recall(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Share of ``truth``'s top-k ids among ``found``'s."""
    return float(np.mean([len(np.intersect1d(a[:k], b[:k])) / k for a, b in zip(found, truth, strict=True)]))


def check(name: str, ok: bool, **facts: Any) -> dict[str, Any]:
    """One result line."""
    row = {
        "check": name,
        "ok": bool(ok),
        **{k: (round(v, 5) if isinstance(v, float) else v) for k, v in facts.items()},
    }
    print(("PASS " if ok else "FAIL ") + json.dumps(row), flush=True)
    return row


def agreement(
    name: str, got: tuple[np.ndarray, np.ndarray], want: tuple[np.ndarray, np.ndarray], *, min_recall: float
) -> dict[str, Any]:
    """GPU ``(scores, ids)`` against the CPU's: recall of the ids >= ``min_recall``, scores within 1e-4."""
    rec, diff = recall(got[1], want[1]), float(np.abs(got[0] - want[0]).max())
    return check(name, rec >= min_recall and diff <= 1e-4, recall=rec, max_score_diff=diff)


def index_checks(x: np.ndarray, q: np.ndarray, k: int = 10) -> list[dict[str, Any]]:
    """Checks 1-5."""
    import faiss

    from index import gpu

    out = []
    d_cpu, i_cpu = faiss.knn(q, x, k, metric=faiss.METRIC_INNER_PRODUCT)
    d_gpu, i_gpu = gpu.knn(q, x, k)
    out.append(agreement("knn", (d_gpu, i_gpu), (d_cpu, i_cpu), min_recall=0.999))
    sample = x[:: max(1, len(x) // 100_000)]
    ivf = faiss.index_factory(x.shape[1], "IVF1024,Flat", faiss.METRIC_INNER_PRODUCT)
    ivf.train(sample)
    ivf.add(x)
    ivf.nprobe = 16
    dc, ic = ivf.search(q, k)
    g = gpu.to_gpu(ivf)
    g.nprobe = 16
    dg, ig = g.search(q, k)
    out.append(agreement("ivf_flat", (dg, ig), (dc, ic), min_recall=0.99))
    cpu_pq = faiss.index_factory(x.shape[1], "IVF1024,PQ32", faiss.METRIC_INNER_PRODUCT)
    cpu_pq.train(sample)
    cpu_pq.add(x)
    gpu_pq = gpu.build_ivf_gpu("IVF1024,PQ32", sample, x)
    for ix in (cpu_pq, gpu_pq):
        faiss.extract_index_ivf(ix).nprobe = 32
    rc, rg = recall(cpu_pq.search(q, k)[1], i_cpu), recall(gpu_pq.search(q, k)[1], i_cpu)
    out.append(check("ivf_gpu_build", rg >= rc - 0.02, recall_gpu_built=rg, recall_cpu_built=rc))
    out.append(ondisk_check(x, q, i_cpu, k))
    if gpu.cagra_available():
        cg = gpu.build_cagra(x)
        r_gpu = recall(gpu.search_cagra(cg, q, k, itopk=128)[1], i_cpu)
        hn = gpu.cagra_to_hnsw(cg, ef_search=128)
        r_cpu = recall(hn.search(q, k)[1], i_cpu)
        out.append(
            check("cagra", r_gpu >= 0.95 and r_cpu >= r_gpu - 0.03, recall_gpu=r_gpu, recall_cpu_hnsw=r_cpu)
        )
    else:
        out.append(check("cagra", True, skipped="FAISS without cuVS (GpuIndexCagra)"))
    return out


def ondisk_check(x: np.ndarray, q: np.ndarray, truth: np.ndarray, k: int) -> dict[str, Any]:
    """Check 4: the out-of-core index with GPU k-means against CPU k-means."""
    from index import ondisk
    from index.ondisk_plan import plan_ondisk

    plan = plan_ondisk(len(x), x.shape[1])
    got = {}
    with tempfile.TemporaryDirectory() as d:
        for dev in ("cpu", "gpu"):
            folder = Path(d) / dev
            ondisk.train_ondisk(folder, x[:: max(1, len(x) // plan.train_size)], plan, gpu=dev == "gpu")
            ondisk.add_shard(folder, 0, [(np.arange(len(x), dtype=np.int64), x)])
            ondisk.merge_shards(folder)
            od = ondisk.open_ondisk(folder)
            if dev == "cpu":
                npb, kf, _ = od.tune(q, truth, k=k)
            got[dev] = recall(od.search(q, k, nprobe=npb, k_factor=kf)[1], truth)
    return check(
        "ondisk_gpu_kmeans",
        got["gpu"] >= got["cpu"] - 0.02,
        recall_gpu_kmeans=got["gpu"],
        recall_cpu_kmeans=got["cpu"],
        nprobe=npb,
        k_factor=kf,
    )


def embedder_check(data: Path) -> dict[str, Any]:
    """Check 6: one EuroSAT build on the GPU, one on the CPU, same cells and close vectors."""
    import torch

    if not torch.cuda.is_available():
        return check("embedder", True, skipped="torch has no CUDA")
    from embedder import contract

    pattern = str(data / "eurosat_ms" / "tif" / "**" / "*.tif")
    mats = {}
    versions: dict[str, set[str]] = {}
    with tempfile.TemporaryDirectory() as d:
        for dev, visible in (("gpu", os.environ.get("CUDA_VISIBLE_DEVICES", "0")), ("cpu", "")):
            db = Path(d) / dev
            code = (
                "import sys; from embedder.build import build_db; "
                "build_db(sys.argv[1], [sys.argv[2]], sensor='sentinel2-l1c-eurosat', model='earthvec-mm')"
            )
            env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
            subprocess.run([sys.executable, "-c", code, str(db), pattern], check=True, env=env)
            t = contract.read_table(db)
            versions[dev] = set(t.column(contract.MODEL).to_pylist())
            order = np.argsort(t.column(contract.H3).to_numpy())
            mats[dev] = (t.column(contract.H3).to_numpy()[order], contract.embeddings_matrix(t)[order])
    same = bool(np.array_equal(mats["gpu"][0], mats["cpu"][0]))
    a, b = mats["gpu"][1], mats["cpu"][1]
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    na, nb = np.argsort(-(a @ a.T), axis=1)[:, 1:6], np.argsort(-(b @ b.T), axis=1)[:, 1:6]
    overlap = float(np.mean([len(np.intersect1d(u, v)) / 5 for u, v in zip(na, nb, strict=True)]))
    diff = float(np.abs(a - b).max())
    one_version = versions["gpu"] == versions["cpu"] and len(versions["cpu"]) == 1
    return check(
        "embedder",
        same and one_version and diff <= 1e-4 and overlap >= 0.8,
        same_cells=same,
        same_version=one_version,
        max_abs_difference=diff,
        min_cosine=float(cos.min()),
        top5_overlap=overlap,
        rows=len(a),
    )


def main(argv: list[str] | None = None) -> int:
    """Run every check; write JSON; exit 1 on a failure."""
    import faiss

    from bench.data import TiledSet, load_real_vectors
    from index import gpu

    p = argparse.ArgumentParser(prog="python -m bench.gpu_check", description=__doc__.split("\n")[0])
    p.add_argument("--n", type=int, default=200_000)
    p.add_argument("--data", default="data")
    p.add_argument("--out", default="bench_results/gpu_check.json")
    a = p.parse_args(argv)
    res: dict[str, Any] = {"faiss": faiss.__version__, "gpus": gpu.gpu_count(), "cuvs": gpu.cagra_available()}
    print(json.dumps(res), flush=True)
    if res["gpus"] == 0:
        print("no GPU visible to FAISS (faiss-cpu or no device): nothing to check", file=sys.stderr)
        return 2
    t = time.perf_counter()
    ts = TiledSet(load_real_vectors(Path(a.data) / "eurosat_ms"), n=a.n, n_queries=500)
    x = ts.matrix()
    rows = index_checks(x, ts.queries)
    rows.append(embedder_check(Path(a.data)))
    res.update(n=a.n, checks=rows, seconds=round(time.perf_counter() - t, 1))
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(res, indent=2))
    failed = [r["check"] for r in rows if not r["ok"]]
    print("all GPU checks passed" if not failed else f"FAILED: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
