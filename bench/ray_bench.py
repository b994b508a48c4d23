"""The Ray runner against the local runner on the same builds: identical rows and overhead.

Run from the repository root (needs the ``ray`` extra)::

    python -m bench.ray_bench            # EuroSAT (369 chips) and the res-4 global build (~94k cells)
    python -m bench.ray_bench --quick    # EuroSAT and a res-3 global build, one repeat

One local Ray instance (``ray.init(num_cpus=2)``, no dashboard) is started first, with the
actors Ray Data starts on first use, and timed on its own; each build then runs with the
local runner and with ``--engine ray`` into fresh folders, alternating which goes first,
``--repeat`` times. Reported per build: the median seconds of each runner, the overhead
ratio ray / local with the cluster already up (a cluster serves many builds) and counting
the cluster's start, and whether the two databases hold identical rows (SHA-256 over the
rows sorted by cell and time: cell id, time and embedding bytes) under identical shard file
names. Written to ``bench_results/ray.json``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TQDM_DISABLE", "1")  # before tqdm is imported: the table is the output

from embedder import contract  # noqa: E402
from embedder.datapath import data_dir  # noqa: E402


def log(msg: str) -> None:
    """Progress to stderr (the table goes to stdout)."""
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def rows_digest(db: str | Path) -> tuple[str, int]:
    """(SHA-256 of the rows sorted by (h3, datetime): cell id, time, embedding bytes; row count)."""
    t = contract.read_table(db, columns=[contract.H3, contract.DATETIME, contract.EMBEDDING])
    cells = t.column(0).to_numpy()
    when = [str(x) for x in t.column(1).to_pylist()]
    vecs = contract.embeddings_matrix(t)
    h = hashlib.sha256()
    for i in sorted(range(len(cells)), key=lambda i: (int(cells[i]), when[i])):
        h.update(int(cells[i]).to_bytes(8, "little") + when[i].encode() + vecs[i].tobytes())
    return h.hexdigest(), t.num_rows


def shard_names(db: str | Path) -> list[str]:
    """The shard files of a database relative to it (the deterministic names)."""
    return [p.relative_to(db).as_posix() for p in contract.embedding_files(db)]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="python -m bench.ray_bench", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="EuroSAT and a res-3 global build, one repeat")
    p.add_argument("--repeat", type=int, help="builds per runner (default 2; quick 1)")
    p.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray instance")
    p.add_argument("--model", default=None, help="embedder (default: the shipped default model)")
    p.add_argument("--global-res", type=int, help="H3 resolution of the global build (default 4; quick 3)")
    p.add_argument("--data", default=None, help="sample-data folder (default $EARTHVEC_DATA or data/)")
    p.add_argument("--out", default="bench_results/ray.json", help="JSON file or folder")
    return p.parse_args(argv)


def cases(a: argparse.Namespace, data: Path) -> dict[str, Callable[[Path, str], Any]]:
    """Build name -> ``build(db, engine)``."""
    from embedder.build import build_db
    from embedder.globe.build import build_global_db
    from embedder.registry import DEFAULT_MODEL

    model = a.model or DEFAULT_MODEL
    res = a.global_res if a.global_res is not None else (3 if a.quick else 4)
    eurosat = str(data / "eurosat_ms" / "tif" / "**" / "*.tif")

    def build_eurosat(db: Path, engine: str) -> Any:
        return build_db(db, [eurosat], sensor="sentinel2-l1c-eurosat", model=model, engine=engine)

    def build_global(db: Path, engine: str) -> Any:
        return build_global_db(db, res=res, model=model, root=data / "global", progress=False, engine=engine)

    return {"eurosat": build_eurosat, f"global-res{res}": build_global}


def main(argv: list[str] | None = None) -> int:
    """Run the comparison, print the table, write the JSON; non-zero when rows differ."""
    a = parse_args(argv)
    import numpy as np
    import pyarrow as pa

    try:
        import ray
    except ImportError:
        print('bench.ray_bench needs Ray: pip install "earthvec[ray]"', file=sys.stderr)
        return 2

    data = data_dir(a.data).resolve()
    repeat = a.repeat or (1 if a.quick else 2)
    out = Path(a.out)
    out = out / "ray.json" if out.suffix != ".json" else out
    work = Path(tempfile.mkdtemp(prefix="evbench"))
    results: dict[str, Any] = {
        "machine": {
            "cpus_visible": os.cpu_count(),
            "ray_cpus": a.cpus,
            "python": platform.python_version(),
            "versions": {"ray": ray.__version__, "numpy": np.__version__, "pyarrow": pa.__version__},
            "load_average_at_start": [round(v, 2) for v in os.getloadavg()],
        },
        "repeat": repeat,
        "builds": [],
    }
    t = time.perf_counter()
    ray.init(
        address="local",  # a new instance, never one a `ray start` left running
        num_cpus=a.cpus,
        include_dashboard=False,
        logging_level="WARNING",
        log_to_driver=False,
        _temp_dir=str(work / "ray"),
    )
    ray.data.range(1).materialize()  # Ray Data starts its own actors on first use: part of the start
    start_s = time.perf_counter() - t
    results["ray_start_seconds"] = round(start_s, 2)
    log(f"local Ray instance with {a.cpus} CPUs and Ray Data up in {start_s:.1f} s")
    failed = False
    try:
        for name, build in cases(a, data).items():
            secs: dict[str, list[float]] = {"local": [], "ray": []}
            dbs: dict[str, Path] = {}
            for r in range(repeat):
                for engine in ("local", "ray") if r % 2 == 0 else ("ray", "local"):
                    db = work / f"{name}-{engine}-{r}"
                    t = time.perf_counter()
                    report = build(db, engine)
                    secs[engine].append(time.perf_counter() - t)
                    log(f"{name} {engine}: {report.rows_written} rows in {secs[engine][-1]:.1f} s")
                    if r == 0:
                        dbs[engine] = db
                    else:
                        shutil.rmtree(db, ignore_errors=True)
            (dl, nl), (dr, nr) = rows_digest(dbs["local"]), rows_digest(dbs["ray"])
            same_rows, same_names = dl == dr, shard_names(dbs["local"]) == shard_names(dbs["ray"])
            failed |= not (same_rows and same_names)
            local_s, ray_s = statistics.median(secs["local"]), statistics.median(secs["ray"])
            results["builds"].append(
                {
                    "build": name,
                    "rows": nl,
                    "rows_ray": nr,
                    "shards": len(shard_names(dbs["local"])),
                    "identical_rows": same_rows,
                    "same_shard_names": same_names,
                    "digest_local": dl,
                    "digest_ray": dr,
                    "local_seconds": [round(s, 2) for s in secs["local"]],
                    "ray_seconds": [round(s, 2) for s in secs["ray"]],
                    "overhead_ratio": round(ray_s / local_s, 3),
                    "overhead_ratio_with_start": round((ray_s + start_s) / local_s, 3),
                }
            )
            for db in dbs.values():
                shutil.rmtree(db, ignore_errors=True)
    finally:
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    results["machine"]["load_average_now"] = [round(v, 2) for v in os.getloadavg()]
    print_table(results)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    log(f"wrote {out}")
    return 1 if failed else 0


def print_table(results: dict[str, Any]) -> None:
    """The comparison as a text table."""
    print(
        f"\nRay runner vs local runner ({results['machine']['ray_cpus']} CPUs; median of "
        f"{results['repeat']}; Ray start {results['ray_start_seconds']:.1f} s, counted in the last column)"
    )
    head = f"{'build':14s} {'rows':>7s} {'shards':>6s} {'identical':>9s} {'local s':>8s} {'ray s':>7s}"
    print(head + f" {'ray/local':>9s} {'+start':>7s}")
    for b in results["builds"]:
        ident = "yes" if b["identical_rows"] and b["same_shard_names"] else "NO"
        local_s = statistics.median(b["local_seconds"])
        ray_s = statistics.median(b["ray_seconds"])
        print(
            f"{b['build']:14s} {b['rows']:7d} {b['shards']:6d} {ident:>9s} {local_s:8.1f} {ray_s:7.1f} "
            f"{b['overhead_ratio']:8.2f}x {b['overhead_ratio_with_start']:6.2f}x"
        )
    m = results["machine"]
    print(
        f"load average at start {m['load_average_at_start']}, at end {m['load_average_now']} "
        "(other jobs on the machine skew every number)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
