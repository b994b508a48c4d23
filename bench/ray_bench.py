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
    """The embeddings files the published manifest lists (deterministic names), sorted."""
    manifest = contract.read_manifest(db)
    return sorted(f.path for f in manifest.files()) if manifest is not None else []


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


def cases(a: argparse.Namespace, data: Path) -> dict[str, dict[str, Callable[[Path], Any]]]:
    """Build name -> runner name -> ``build(db)``.

    Runners: ``local`` (the default local runner), ``local-Nproc`` (the global build's own
    ``workers=N`` forked processes, N = ``--cpus``) and ``ray``.
    """
    from embedder.build import build_db
    from embedder.globe.build import build_global_db
    from embedder.registry import DEFAULT_MODEL

    model = a.model or DEFAULT_MODEL
    res = a.global_res if a.global_res is not None else (3 if a.quick else 4)
    eurosat = [str(data / "eurosat_ms" / "tif" / "**" / "*.tif")]
    es = {"sensor": "sentinel2-l1c-eurosat", "model": model}
    gl = {"res": res, "model": model, "root": data / "global", "progress": False}
    return {
        "eurosat": {
            "local": lambda db: build_db(db, eurosat, **es),
            "ray": lambda db: build_db(db, eurosat, engine="ray", **es),
        },
        f"global-res{res}": {
            "local": lambda db: build_global_db(db, **gl),
            f"local-{a.cpus}proc": lambda db: forked_global_build(db, a.cpus, gl),
            "ray": lambda db: build_global_db(db, engine="ray", **gl),
        },
    }


def forked_global_build(db: Path, workers: int, kwargs: dict[str, Any]) -> Any:
    """``build_global_db(workers=N)`` run in a fresh process; returns its report.

    It forks, and forking a process that joined Ray is unsafe. The report's ``seconds`` (the
    build call, timed inside that process) is what the benchmark records for it.
    """
    import subprocess

    from embedder.contract import BuildReport

    args = f"workers={workers}, res={kwargs['res']}, model={kwargs['model']!r}, progress=False"
    code = (
        "import json\nfrom embedder.globe.build import build_global_db\n"
        f"r = build_global_db({str(db)!r}, root={str(kwargs['root'])!r}, {args})\n"
        "print(json.dumps(r.to_dict()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    d = json.loads(out.strip().splitlines()[-1])
    d.pop("rows_per_second", None)
    return BuildReport(**d)


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
        for name, runners in cases(a, data).items():
            secs: dict[str, list[float]] = {r: [] for r in runners}
            dbs: dict[str, Path] = {}
            for rep in range(repeat):
                order = list(runners)[rep % len(runners) :] + list(runners)[: rep % len(runners)]
                for runner in order:  # each repeat starts with another runner
                    db = work / f"{name}-{runner}-{rep}"
                    t = time.perf_counter()
                    report = runners[runner](db)
                    took = time.perf_counter() - t
                    secs[runner].append(report.seconds if runner.endswith("proc") else took)
                    log(f"{name} {runner}: {report.rows_written} rows in {secs[runner][-1]:.1f} s")
                    if rep == 0:
                        dbs[runner] = db
                    else:
                        shutil.rmtree(db, ignore_errors=True)
            digests = {r: rows_digest(db) for r, db in dbs.items()}
            names = {r: shard_names(db) for r, db in dbs.items()}
            same_rows = all(d == digests["local"] for d in digests.values())
            same_names = all(n == names["local"] for n in names.values())
            failed |= not (same_rows and same_names)
            med = {r: statistics.median(v) for r, v in secs.items()}
            row: dict[str, Any] = {
                "build": name,
                "rows": digests["local"][1],
                "shards": len(names["local"]),
                "identical_rows": same_rows,
                "same_shard_names": same_names,
                "digests": {r: d[0] for r, d in digests.items()},
                "seconds": {r: [round(x, 2) for x in v] for r, v in secs.items()},
                "overhead_ratio": round(med["ray"] / med["local"], 3),
                "overhead_ratio_with_start": round((med["ray"] + start_s) / med["local"], 3),
            }
            parallel = [r for r in runners if r.endswith("proc")]
            if parallel:
                row["ratio_to_" + parallel[0]] = round(med["ray"] / med[parallel[0]], 3)
            results["builds"].append(row)
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
        f"{results['repeat']}; Ray start {results['ray_start_seconds']:.1f} s, counted in '+start')"
    )
    print(
        f"{'build':14s} {'rows':>7s} {'shards':>6s} {'identical':>9s} {'local s':>8s} {'ray s':>7s} "
        f"{'ray/local':>9s} {'+start':>7s}  local, N processes"
    )
    for b in results["builds"]:
        ident = "yes" if b["identical_rows"] and b["same_shard_names"] else "NO"
        med = {r: statistics.median(v) for r, v in b["seconds"].items()}
        extra = [f"{r}: {med[r]:.1f} s, ray/it {b['ratio_to_' + r]:.2f}x" for r in med if r.endswith("proc")]
        print(
            f"{b['build']:14s} {b['rows']:7d} {b['shards']:6d} {ident:>9s} {med['local']:8.1f} "
            f"{med['ray']:7.1f} {b['overhead_ratio']:8.2f}x {b['overhead_ratio_with_start']:6.2f}x  "
            + ("; ".join(extra) or "-")
        )
    m = results["machine"]
    print(
        f"load average at start {m['load_average_at_start']}, at end {m['load_average_now']} "
        "(other jobs on the machine skew every number)"
    )


if __name__ == "__main__":
    raise SystemExit(main())
