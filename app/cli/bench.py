"""``earthvec bench``: every benchmark in one run; each prints its table and writes JSON."""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HELP = "Run the benchmarks and write a JSON report."

SUITES = ("build", "ingest", "eval", "global", "search", "plugins", "ray", "pq", "ondisk", "scale")
DEFAULT = tuple(s for s in SUITES if s != "scale")  # scale: 100M vectors, hours on 2 cores (make bench-scale)


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec bench``."""
    p.add_argument("--out", default="bench_results", help="folder for the JSON reports")
    p.add_argument(
        "--only",
        default=",".join(DEFAULT),
        help=f"comma list of: {', '.join(SUITES)} (default: all but scale)",
    )
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke run of a few minutes)")
    p.add_argument("--data", default=None, help="sample-data folder (default $EARTHVEC_DATA or data/)")


def _run(cmd: list[str]) -> int:
    print("$ " + " ".join(cmd), flush=True)
    return subprocess.call(cmd)


def bench_build(out: Path, data: Path) -> int:
    """Build throughput of the 369 EuroSAT chips with each registered model (fresh databases)."""
    import json
    import shutil
    import tempfile

    from embedder.build import build_db
    from embedder.registry import available_embedders, takes_weights

    rows = []
    for model in [m for m in available_embedders() if not takes_weights(m)]:  # pretrained: bench.plugins
        db = Path(tempfile.mkdtemp()) / "db"
        t = time.perf_counter()
        pattern = str(data / "eurosat_ms" / "tif" / "**" / "*.tif")
        report = build_db(db, [pattern], sensor="sentinel2-l1c-eurosat", model=model)
        seconds = time.perf_counter() - t
        rows.append(
            {
                "model": report.model,
                "rows": report.rows_written,
                "seconds": round(seconds, 2),
                "rows_per_s": round(report.rows_written / seconds, 1),
            }
        )
        shutil.rmtree(db.parent, ignore_errors=True)
    print(f"{'model':32s} {'rows':>6s} {'seconds':>8s} {'rows/s':>8s}")
    for r in rows:
        print(f"{r['model']:32s} {r['rows']:6d} {r['seconds']:8.2f} {r['rows_per_s']:8.1f}")
    (out / "build.json").write_text(json.dumps(rows, indent=2))
    return 0


def run(args: argparse.Namespace) -> int:
    """Run the chosen suites; returns non-zero if any failed."""
    import importlib.util
    import os

    from embedder.datapath import DATA_ENV, data_dir, package_file

    if importlib.util.find_spec("bench") is None:
        print("earthvec bench: the bench package is not installed; run it from a checkout", file=sys.stderr)
        return 2
    data = data_dir(args.data).resolve()
    os.environ[DATA_ENV] = str(data)  # the suites run as subprocesses and find the data through it
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    failed = []
    for suite in [s.strip() for s in args.only.split(",") if s.strip()]:
        print(f"\n=== {suite} ===", flush=True)
        if suite == "build":
            rc = bench_build(out, data)
        elif suite == "ingest":
            cmd = [py, "-m", "bench.ingest_bench", "--out", str(out / "ingest.json"), "--data", str(data)]
            rc = _run(cmd + (["--quick"] if args.quick else []))
        elif suite == "eval":
            draws = "5" if args.quick else "20"
            rc = _run(
                [
                    py,
                    "-m",
                    "app.cli.main",
                    "eval",
                    "--threads",
                    "1",
                    "--draws",
                    draws,
                    "--json",
                    str(out / "eval.json"),
                ]
            )
        elif suite == "global":
            cmd = [py, "-m", "bench.global_experiment", "--out", str(out / "global_experiment.json")]
            cmd += ["--checkpoint", f"earthvec-mm={package_file('embedder', 'weights', 'earthvec-mm.pt')}"]
            cmd += ["--model", "earthvec-tex"]
            size = ["--cells", "3000", "--draws", "2"] if args.quick else ["--train-steps", "120"]
            rc = _run(cmd + size)
        elif suite == "plugins":
            cmd = [py, "-m", "bench.plugins", "--threads", "2", "--out", str(out / "plugins.json")]
            rc = _run(cmd + (["--chips", "16", "--batch-sizes", "8"] if args.quick else []))
        elif suite == "search":
            rc = _run(
                [py, "-m", "bench.run", "--out", str(out / "search.json"), "--data", str(data / "eurosat_ms")]
                + (["--quick"] if args.quick else [])
            )
        elif suite == "ray":
            cmd = [py, "-m", "bench.ray_bench", "--out", str(out / "ray.json"), "--data", str(data)]
            rc = _run(cmd + (["--quick"] if args.quick else []))
        elif suite == "pq":  # why 4-bit PQ with inner product failed, and the fix
            cmd = [py, "-m", "bench.pq_diagnosis", "--out", str(out / "pq_diagnosis.json")]
            rc = _run(cmd + ["--data", str(data / "eurosat_ms")] + (["--n", "200000"] if args.quick else []))
        elif suite == "ondisk":  # a database's out-of-core index (res-4 global): recall and latency
            rc = _run([py, "-m", "bench.ondisk_db_bench", "--out", str(out / "ondisk_db.json")])
        elif suite == "scale":  # the out-of-core index: 100M x 64-d (hours on 2 cores), quick 1M
            cmd = [py, "-m", "bench.scale_bench", "--out", str(out / "scale.json")]
            rc = _run(cmd + ["--data", str(data / "eurosat_ms")] + (["--quick"] if args.quick else []))
        else:
            print(f"unknown suite {suite!r}; choose from {', '.join(SUITES)}", file=sys.stderr)
            rc = 2
        if rc:
            failed.append(suite)
    if failed:
        print(f"benchmarks failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
