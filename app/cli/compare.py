"""``earthvec compare DB_A DB_B --seeds FILE``: the same spatially blocked kNN probe over two databases."""

from __future__ import annotations

import argparse
from typing import Any

HELP = "Compare two databases of one place (two models or products) with the same kNN probe."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec compare``."""
    p.add_argument("db_a", help="first database folder")
    p.add_argument("db_b", help="second database folder (same place, any model or product)")
    p.add_argument(
        "--seeds",
        required=True,
        help="CSV with lat,lon,label or h3,label columns, or GeoJSON points with a 'label'",
    )
    p.add_argument("-k", type=int, default=5, help="neighbours per vote (default 5)")
    p.add_argument("--folds", type=int, default=5, help="spatial cross-validation folds (default 5)")
    p.add_argument(
        "--block-res",
        type=int,
        help="H3 resolution of the spatial blocks (default: the coarser database's resolution - 4)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def table(c: Any) -> str:
    """The comparison as a two-column text table."""
    rows = [
        ("database", c.a.db, c.b.db),
        ("model", c.a.model, c.b.model),
        ("dims", str(c.a.dim), str(c.b.dim)),
        ("H3 resolution", str(c.a.resolution), str(c.b.resolution)),
        ("accuracy", _pct(c.a.accuracy), _pct(c.b.accuracy)),
        ("balanced accuracy", _pct(c.a.balanced_accuracy), _pct(c.b.balanced_accuracy)),
        ("per-fold spread (std)", _pct(c.a.fold_std), _pct(c.b.fold_std)),
        ("fold accuracies", " ".join(_pct(v) for v in c.a.fold_accuracy),
         " ".join(_pct(v) for v in c.b.fold_accuracy)),
    ]  # fmt: skip
    wa = max(len(r[1]) for r in rows)
    lines = [f"{'':24s} {'A':{wa}s}  B"]
    lines += [f"{k:24s} {a:{wa}s}  {b}" for k, a, b in rows]
    lines.append(
        f"seeds: {c.seeds_used} used of {c.seeds_read} (outside A {c.seeds_outside_a}, outside B "
        f"{c.seeds_outside_b}, sharing a cell {c.seeds_duplicate}); {len(c.class_counts)} classes; "
        f"k={c.k}; the same {c.a.n_folds} folds of {c.a.n_blocks} H3 res-{c.block_resolution} blocks for both"
    )
    for msg in {c.a.message, c.b.message} - {""}:
        lines.append(f"note: {msg}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Run the probe on both databases and print one table (or JSON)."""
    import json

    from index.compare import compare

    c = compare(args.db_a, args.db_b, args.seeds, k=args.k, n_folds=args.folds, block_res=args.block_res)
    print(json.dumps(c.to_dict(), indent=1) if args.format == "json" else table(c))
    return 0
