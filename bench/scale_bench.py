"""The out-of-core benchmark: N x 64-d real-derived vectors that never sit in RAM.

Run from the repository root (``nice -n 19`` on a shared machine)::

    python -m bench.scale_bench                      # 100M x 64-d (hours on 2 cores)
    python -m bench.scale_bench --n 10000000         # 10M
    python -m bench.scale_bench --quick              # 1M, a few minutes

The vectors come from ``bench/data.py`` (EuroSAT patch spectra projected to 64-d, tiled up
with noisy copies), generated block by block from ``(seed, block)``. For each code type the
index is built with :func:`index.ondisk.build_ondisk`: trained once on a sample, filled shard
by shard (``--shard-rows``, ``--workers`` processes), lists merged into one memory-mapped
file, vectors kept on disk (float32) for exact re-ranking. Exact ground truth for the held-out
queries is streamed over the same blocks (FAISS ``knn`` per block into a ``ResultHeap``).

``(nprobe, k_factor)`` is tuned on the first half of the queries to recall@10 >= 0.95;
recall and queries/s are measured on the other half (the first batched pass also timed cold).
Build time, bytes per vector (lists and quantiser in RAM/on disk, vectors, ids), peak RSS and
disk are recorded. The index folder is deleted afterwards unless ``--keep``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from bench.data import TiledSet, load_real_vectors
from bench.measure import qps_batched, qps_single, recall_at_k, timed


def log(msg: str) -> None:
    """Progress to stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.scale_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="1M vectors, 400 queries")
    p.add_argument("--n", type=int, help="vectors (default 100,000,000; quick 1,000,000)")
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--queries", type=int, help="held-out queries (default 1000; quick 400)")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--target", type=float, default=0.95)
    p.add_argument(
        "--codes",
        default="rabitq4",
        help="comma list of out-of-core codes: rabitq,rabitq2,rabitq4,pq4,pq8,sq8",
    )
    p.add_argument("--shard-rows", type=int, default=5_000_000)
    p.add_argument("--block", type=int, default=200_000, help="rows generated at a time")
    p.add_argument("--workers", type=int, default=1, help="processes adding shards")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--vector-dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--data", default="data/eurosat_ms")
    p.add_argument("--folder", default="bench_results/scale_index", help="index folders go here")
    p.add_argument("--keep", action="store_true", help="keep the index folders")
    p.add_argument(
        "--sweep",
        metavar="NPROBE:KF,...",
        help="open the index a --keep run left in --folder (no build) and measure the held-out half "
        "at these settings (ground truth streamed again); rows go to the JSON's 'sweep'",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep a killed run's folder and add only its missing shards (ground truth in a pass of its own)",
    )
    p.add_argument("--out", default="bench_results/scale.json", help="JSON file or folder")
    a = p.parse_args(argv)
    a.n = a.n or (1_000_000 if a.quick else 100_000_000)
    a.queries = a.queries or (400 if a.quick else 1000)
    return a


def shard_blocks(ts: TiledSet, first: int, last: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Blocks ``first .. last-1`` of the tiled set as ``(row ids, vectors)`` (picklable via partial)."""
    for b in range(first, last):
        s, e = ts.block_rows(b)
        yield np.arange(s, e, dtype=np.int64), ts.vectors(s, e)


def blocks_per_shard(ts: TiledSet, shard_rows: int) -> int:
    """Generated blocks in each shard of ``shard_rows`` rows (at least one)."""
    return max(1, shard_rows // ts.block)


def _shard_list(ts: TiledSet, shard_rows: int) -> list[functools.partial[Any]]:
    per = blocks_per_shard(ts, shard_rows)
    nb = ts.n_blocks()
    return [functools.partial(shard_blocks, ts, b, min(nb, b + per)) for b in range(0, nb, per)]


def training_sample(ts: TiledSet, size: int, seed: int = 7) -> np.ndarray:
    """``size`` rows drawn from random blocks (each block is a uniform draw of the set)."""
    rng = np.random.default_rng(seed)
    nb = ts.n_blocks()
    per = max(1, min(ts.block, size // max(1, min(nb, 64))))
    picks = rng.permutation(nb)
    parts, got = [], 0
    for b in picks:
        s, e = ts.block_rows(int(b))
        x = ts.vectors(s, e)
        take = min(per, size - got, len(x))
        parts.append(x[rng.choice(len(x), take, replace=False)])
        got += take
        if got >= size:
            break
    return np.concatenate(parts)


class TruthHeap:
    """Exact top-k by inner product over blocks seen one at a time (FAISS ``knn`` + ``ResultHeap``).

    Fed from the build's own pass (:func:`tapped`) it saves generating the set twice; the
    seconds spent here are counted apart from the build's.
    """

    def __init__(self, q: np.ndarray, k: int) -> None:
        import faiss

        self.q, self.k = q, k
        self.heap = faiss.ResultHeap(len(q), k, keep_max=True)
        self.seconds = 0.0
        self.rows = 0

    def add(self, start: int, x: np.ndarray) -> None:
        """Rows ``start .. start + len(x) - 1``."""
        import faiss

        t = time.perf_counter()
        d, i = faiss.knn(self.q, x, self.k, metric=faiss.METRIC_INNER_PRODUCT)
        self.heap.add_result(d, i + start)
        self.rows += len(x)
        self.seconds += time.perf_counter() - t

    def result(self) -> np.ndarray:
        """The (nq, k) row ids, best first."""
        self.heap.finalize()
        return np.asarray(self.heap.I)


def tapped(source: Any, tap: TruthHeap) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The blocks of ``source()``, each also fed to ``tap`` (ids are row numbers)."""
    for ids, x in source():
        tap.add(int(ids[0]), x)
        yield ids, x


def stream_truth(ts: TiledSet, q: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k row ids by inner product, one generated block at a time (its own pass)."""
    tap = TruthHeap(q, k)
    for b in range(ts.n_blocks()):
        s, e = ts.block_rows(b)
        tap.add(s, ts.vectors(s, e))
    return tap.result()


def stored_rows_match(od: Any, ts: TiledSet, shard_rows: int, per_shard: int = 64) -> bool:
    """Whether the index's stored ids and vectors are the set's rows (a few per shard, checked).

    A resumed build reuses shards written by an earlier process: this catches shards that do
    not hold what the set generates now.
    """
    from index.refine import handles

    per = blocks_per_shard(ts, shard_rows) * ts.block
    rng = np.random.default_rng(11)
    for shard in range(len(od.ids)):
        start = shard * per
        n = len(od.ids[shard])
        rows = np.sort(rng.choice(n, min(per_shard, n), replace=False))
        h = handles(shard, rows)
        if not np.array_equal(od.ids_of(h), start + rows):
            return False
        b = (start + rows[0]) // ts.block  # one generated block is enough to compare against
        s, e = ts.block_rows(int(b))
        inside = rows[(start + rows >= s) & (start + rows < e)]
        want = ts.vectors(s, e)[start + inside - s]
        if not np.allclose(od.vectors.take(handles(shard, inside)), want, atol=1e-6):
            return False
    return True


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def peak_rss_gib() -> dict[str, float]:
    """Memory (GiB): peak resident of this process and of finished children, and anonymous now.

    ``RssAnon`` leaves out the memory-mapped index files, whose pages the kernel may drop.
    """
    me = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    anon = 0.0
    for line in (
        Path("/proc/self/status").read_text().splitlines() if Path("/proc/self/status").exists() else []
    ):
        if line.startswith("RssAnon:"):
            anon = int(line.split()[1]) / 2**20
    return {"self": round(me, 2), "children": round(kids, 2), "anon_now": round(anon, 2)}


def run_codes(
    a: argparse.Namespace, ts: TiledSet, codes: str, truth: np.ndarray | None
) -> tuple[dict[str, Any], np.ndarray]:
    """Build, tune and measure one out-of-core index; ground truth comes from its pass if not given."""
    from index.ondisk import build_ondisk
    from index.ondisk_plan import plan_ondisk

    plan = plan_ondisk(a.n, ts.dim, codes=codes, vector_dtype=a.vector_dtype)
    folder = Path(a.folder) / f"{codes}-n{a.n}"
    if not a.resume:
        shutil.rmtree(folder, ignore_errors=True)
    log(f"{codes}: {plan.factory} ({plan.reason}); sample {plan.train_size:,}")
    t_s, sample = timed(lambda: training_sample(ts, plan.train_size))
    shards = _shard_list(ts, a.shard_rows)
    tap = None
    if truth is None:  # one process: the build's pass also computes the exact answers
        tap = TruthHeap(ts.queries, a.k)
        shards = [functools.partial(tapped, s, tap) for s in shards]
    t0 = time.perf_counter()
    od = build_ondisk(folder, shards, sample, n=a.n, plan=plan, workers=a.workers, threads=a.threads, log=log)
    build_s = time.perf_counter() - t0
    del sample
    gt_s = None
    if tap is not None:
        if tap.rows != a.n:
            raise RuntimeError(f"the ground truth saw {tap.rows} rows, not {a.n}: was a shard skipped?")
        truth, gt_s = tap.result(), tap.seconds
        build_s -= gt_s
    stored = stored_rows_match(od, ts, a.shard_rows)
    log(f"  stored rows match the generated set: {stored}")
    q = ts.queries
    half = len(q) // 2
    tq, tt, eq, et = q[:half], truth[:half], q[half:], truth[half:]
    t_tune, (npb, kf, rec_tune) = timed(lambda: od.tune(tq, tt, k=a.k, target=a.target))
    t_cold, (_, found) = timed(lambda: od.search(eq, a.k))
    rec = recall_at_k(found, et, a.k)
    fb = od.file_bytes()
    out: dict[str, Any] = {
        "codes": codes,
        "factory": plan.factory,
        "metric": plan.metric,
        "plan": plan.to_dict(),
        "shards": len(shards),
        "stored_rows_match": stored,
        "sample_s": round(t_s, 1),
        "build_s": round(build_s, 1),
        "ground_truth_s": None if gt_s is None else round(gt_s, 1),
        "nprobe": npb,
        "k_factor": kf,
        "recall_tune_half": round(rec_tune, 4),
        "recall": round(rec, 4),
        "reached_target": rec >= a.target,
        "tune_s": round(t_tune, 1),
        "qps_batch_cold": round(len(eq) / t_cold, 1),
        "qps_batch": round(qps_batched(lambda z: od.search(z, a.k), eq), 1),
        "qps_single": round(qps_single(lambda z: od.search(z, a.k), eq[:200]), 1),
        "bytes": fb,
        "bytes_per_vector": {
            "lists_and_quantizer": round((fb["lists"] + fb["quantizer"]) / a.n, 2),
            "ram_when_open": round(fb["quantizer"] / a.n, 3),
            "vectors": round(fb["vectors"] / a.n, 1),
            "ids": round(fb["ids"] / a.n, 1),
        },
        "disk_gib": round(disk_bytes(folder) / 2**30, 2),
        "peak_rss_gib": peak_rss_gib(),
    }
    log(f"  {json.dumps({k: v for k, v in out.items() if k not in ('plan', 'bytes')})}")
    if not a.keep:  # the open maps keep the data alive until ``od`` goes (Linux)
        shutil.rmtree(folder, ignore_errors=True)
    return out, truth


def sweep(a: argparse.Namespace, ts: TiledSet, codes: str) -> list[dict[str, Any]]:
    """Recall and queries/s of the held-out half at each ``--sweep`` setting of a kept index."""
    from index.ondisk_index import open_ondisk

    od = open_ondisk(Path(a.folder) / f"{codes}-n{a.n}")
    log(f"{a.n:,} x {a.dim}: streaming exact ground truth for {a.queries} queries")
    truth = stream_truth(ts, ts.queries, a.k)
    half = len(ts.queries) // 2
    eq, et = ts.queries[half:], truth[half:]
    rows = []
    for item in a.sweep.split(","):
        npb, kf = (int(v) for v in item.split(":"))

        def run(z: np.ndarray, npb: int = npb, kf: int = kf) -> Any:
            return od.search(z, a.k, nprobe=npb, k_factor=kf)

        rec = recall_at_k(run(eq)[1], et, a.k)
        row = {
            "codes": codes,
            "nprobe": npb,
            "k_factor": kf,
            "recall": round(rec, 4),
            "reached_target": rec >= a.target,
            "qps_batch": round(qps_batched(run, eq), 1),
            "qps_single": round(qps_single(run, eq[:200]), 1),
        }
        log(f"  {json.dumps(row)}")
        rows.append(row)
    return rows


def render_sweep(res: dict[str, Any]) -> str:
    """The printed table of a ``--sweep`` run."""
    lines = [
        f"out-of-core index, {res['data']['n']:,} x {res['data']['dim']}-d, held-out half of "
        f"{res['args']['queries']} queries, recall@{res['args']['k']}",
        f"{'codes':8s} {'nprobe':>6s} {'kf':>3s} {'recall':>7s} {'QPS 1':>7s} {'QPS batch':>9s}",
    ]
    for r in res["sweep"]:
        lines.append(
            f"{r['codes']:8s} {r['nprobe']:6d} {r['k_factor']:3d} {r['recall']:7.4f} "
            f"{r['qps_single']:7.0f} {r['qps_batch']:9.0f}"
        )
    return "\n".join(lines)


def render(res: dict[str, Any]) -> str:
    """The printed table."""
    lines = [
        f"out-of-core index, {res['data']['n']:,} x {res['data']['dim']}-d, {res['machine']['cpus']} cores, "
        f"recall@{res['args']['k']} target {res['args']['target']} (ground truth streamed in "
        f"{res['ground_truth_s']} s)",
        f"{'codes':8s} {'factory':28s} {'build s':>8s} {'B/vec lists':>11s} {'B/vec vecs':>10s} "
        f"{'nprobe':>6s} {'kf':>3s} {'recall':>7s} {'QPS 1':>7s} {'QPS batch':>9s} "
        f"{'RSS GiB':>7s} {'anon':>5s}",
    ]
    for r in res["rows"]:
        b = r["bytes_per_vector"]
        lines.append(
            f"{r['codes']:8s} {r['factory']:28s} {r['build_s']:8.0f} {b['lists_and_quantizer']:11.1f} "
            f"{b['vectors']:10.1f} {r['nprobe']:6d} {r['k_factor']:3d} {r['recall']:7.4f} "
            f"{r['qps_single']:7.0f} {r['qps_batch']:9.0f} {r['peak_rss_gib']['self']:7.2f} "
            f"{r['peak_rss_gib']['anon_now']:5.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the table; write JSON."""
    import faiss

    a = parse_args(argv)
    faiss.omp_set_num_threads(a.threads)
    out = Path(a.out)
    if out.suffix != ".json":
        out = out / "scale.json"
    t_all = time.perf_counter()
    res: dict[str, Any] = {
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "faiss": faiss.__version__,
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
        },
        "args": vars(a),
        "rows": [],
    }
    real = load_real_vectors(a.data, dim=a.dim)
    ts = TiledSet(real, n=a.n, n_queries=a.queries, block=a.block)
    res["data"] = ts.describe()
    if a.sweep:
        res["sweep"] = [r for c in a.codes.split(",") if c.strip() for r in sweep(a, ts, c.strip())]
        res["complete"] = True
        res["machine"]["load_average_now"] = [round(v, 2) for v in os.getloadavg()]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(res, indent=2, default=str))
        print(render_sweep(res))
        return 0
    truth: np.ndarray | None = None
    if a.workers > 1 or a.resume:  # shards run elsewhere or were added before: a pass of its own
        log(f"{a.n:,} x {a.dim}: streaming exact ground truth for {a.queries} queries")
        t_gt, truth = timed(lambda: stream_truth(ts, ts.queries, a.k))
        res["ground_truth_s"] = round(t_gt, 1)
        log(f"  ground truth in {t_gt:.0f} s")

    def save(final: bool) -> None:
        res["complete"] = final
        res["total_s"] = round(time.perf_counter() - t_all, 1)
        res["machine"]["load_average_now"] = [round(v, 2) for v in os.getloadavg()]
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(res, indent=2, default=str))
        os.replace(tmp, out)

    for codes in [c.strip() for c in a.codes.split(",") if c.strip()]:
        row, truth = run_codes(a, ts, codes, truth)
        res["rows"].append(row)
        res.setdefault("ground_truth_s", row["ground_truth_s"])
        save(False)
    save(True)
    print(render(res))
    log(f"wrote {out} in {res['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
