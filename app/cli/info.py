"""``earthvec info DB``: counts, model, resolution, partitions, dates and index state."""

from __future__ import annotations

import argparse

HELP = "Counts, model, resolution and partitions of a database."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec info``."""
    p.add_argument("db", help="database folder (built by earthvec build)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format")
    p.add_argument(
        "--rebuild-index",
        action="store_true",
        help="(re)build the FAISS index from the embeddings, then report",
    )
    p.add_argument(
        "--pyramid",
        metavar="RES,RES",
        help="build parent aggregates (DB/pyramid) at these coarser H3 resolutions, e.g. 7,6,5",
    )
    p.add_argument(
        "--update-index",
        action="store_true",
        help="build a missing index or bring a stale one up to date, then report",
    )


def run(args: argparse.Namespace) -> int:
    """Print the summary."""
    import json

    from index.info import db_info
    from index.store import open_index

    if args.rebuild_index or args.update_index or args.pyramid:
        vi = open_index(args.db, rebuild=True if args.rebuild_index else None, progress=True)
        if args.pyramid:
            from embedder.errors import QueryError
            from index.pyramid import build_pyramid

            try:
                levels = [int(r) for r in args.pyramid.split(",")]
            except ValueError as exc:
                raise QueryError(f"--pyramid {args.pyramid!r}: give resolutions such as 7,6,5") from exc
            build_pyramid(vi, levels, progress=True, wait=False)
    info = db_info(args.db)
    if args.format == "json":
        print(json.dumps(info, indent=1))
        return 0
    ix = info["index"]
    stale, old_maps = set(info["stale_pyramid"]), set(info["stale_predictions"])
    lines = [
        ("database", info["db"] + (f" (generation {info['generation']})" if info["generation"] else "")),
        ("model", f"{info['model']} (dim {info['dim']})"),
        ("rows / cells", f"{info['rows']} rows, {info['cells']} cells"),
        (
            "H3 resolution",
            f"{info['h3_resolution']} (partitions at res {info['partition_resolution']})",
        ),
        (
            "partitions / files",
            f"{info['partitions']} partitions, {info['files']} files, {info['bytes'] / 2**20:.1f} MiB",
        ),
        (
            "dates",
            f"{info['datetime_min']} .. {info['datetime_max']} ({info['dated_rows']} dated rows)"
            if info["dated_rows"]
            else "none",
        ),
        ("modalities", ", ".join(f"{k} ({v})" for k, v in info["modalities"].items()) or "-"),
        ("sensors", ", ".join(f"{k} ({v})" for k, v in info["sensors"].items()) or "-"),
        (
            "index",
            f"{ix['state']}"
            + (
                f": {ix['factory']}, {ix['count']} vectors, built {ix['built_at']}"
                if ix["factory"]
                else f" (build it: earthvec index {info['db']})"
            ),
        ),
        ("out-of-core index", _ondisk_line(info)),
        ("pyramid", ", ".join(f"res {r}" + (" (stale)" * (r in stale)) for r in info["pyramid"]) or "-"),
        ("labels", ", ".join(info["labels"]) or "-"),
        ("predictions", ", ".join(p + " (stale)" * (p in old_maps) for p in info["predictions"]) or "-"),
    ]
    if info["unlisted"]:
        n = len(info["unlisted"])
        lines.append(
            ("not published", f"{n} file(s) under embeddings/ that no generation lists (ignored by every "
             f"reader): {', '.join(info['unlisted'][:3])}{' ...' if n > 3 else ''}")
        )  # fmt: skip
    for key, val in lines:
        print(f"{key:20s} {val}")
    return 0


def _ondisk_line(info: dict) -> str:
    """The out-of-core index: factory, count and whether it indexes the published embeddings."""
    od = info["ondisk"]
    if od is None:
        return "-"
    line = f"{od['state']}: {od['factory']}, {od['count']} vectors, built {od['built_at']}"
    if od["state"] != "fresh":
        line += f" from other embeddings; rebuild it: earthvec index {info['db']} --out-of-core"
    return line
