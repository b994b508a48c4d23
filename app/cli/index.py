"""``earthvec index DB [--factory F] [--pyramid RES,RES] [--out-of-core [--nlist N]] [--no-wait]``."""

from __future__ import annotations

import argparse

HELP = "Build or update the FAISS index (and pyramid levels) of a database."


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec index``."""
    from app.cli.build import add_writer_arguments

    p.add_argument("db", help="database folder (built by earthvec build)")
    p.add_argument("--factory", help="FAISS factory string, e.g. HNSW32 or IVF1024,Flat (default: by size)")
    p.add_argument(
        "--rebuild", action="store_true", help="build afresh even when the index is up to date"
    )
    p.add_argument(
        "--pyramid",
        metavar="RES,RES",
        help="also build parent aggregates (DB/pyramid) at these coarser H3 resolutions, e.g. 7,6,5",
    )
    o = p.add_argument_group("out-of-core index (vectors beyond RAM)")
    o.add_argument(
        "--out-of-core",
        action="store_true",
        help="build the out-of-core index instead (IVF lists and vectors on disk, memory-mapped; "
        "one shard per partition, a killed build resumes) under DB/index/ondisk",
    )
    o.add_argument(
        "--nlist", type=int, metavar="N", help="inverted lists of the out-of-core index (default: by size)"
    )
    add_writer_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Build or update the index under the database's writer lock and print what it holds."""
    from embedder import contract
    from embedder.errors import QueryError
    from index.store import build_index, index_state, open_index

    wait = not args.no_wait
    if args.out_of_core:
        return _out_of_core(args, wait)
    if args.nlist is not None:
        raise QueryError("--nlist applies to the out-of-core index; add --out-of-core")
    levels: list[int] = []
    if args.pyramid:
        try:
            levels = [int(r) for r in args.pyramid.split(",")]
        except ValueError as exc:
            raise QueryError(f"--pyramid {args.pyramid!r}: give resolutions such as 7,6,5") from exc
    from embedder.storage import DbLock

    with DbLock(args.db, "earthvec index", wait=wait):  # one writer: nothing changes under us
        state = index_state(args.db)
        if args.rebuild or args.factory or state in ("missing", "model mismatch"):
            vi = build_index(args.db, factory=args.factory, progress=True)
            what = "built"
        else:  # a stale index is updated partition by partition where its structure allows
            vi = open_index(args.db, progress=True)
            what = "updated" if state == "stale" else "already up to date"
        if levels:
            from index.pyramid import build_pyramid

            build_pyramid(vi, levels, progress=True)
        gen = contract.load_snapshot(args.db).generation
    print(
        f"index of {args.db} {what}: {vi.sidecar.factory}, {len(vi)} cells, model {vi.model}"
        + (f"; pyramid levels {', '.join(map(str, levels))}" if levels else "")
        + (f"; generation {gen}" if gen else "")
    )
    return 0


def _out_of_core(args: argparse.Namespace, wait: bool) -> int:
    """Build (or resume) the out-of-core index under the writer lock and print what it holds."""
    import sys

    from embedder.errors import QueryError
    from embedder.storage import DbLock
    from index.ondisk_db import build_db_ondisk

    if args.factory or args.pyramid:
        raise QueryError(
            "--factory and --pyramid apply to the in-RAM index; give --out-of-core alone (with --nlist N)"
        )
    if args.nlist is not None and args.nlist < 1:
        raise QueryError(f"--nlist {args.nlist}: give at least one list")
    with DbLock(args.db, "earthvec index --out-of-core", wait=wait):
        rec, built = build_db_ondisk(
            args.db, nlist=args.nlist, rebuild=args.rebuild, log=lambda m: print(m, file=sys.stderr)
        )
    what = "built" if built else "already up to date"
    print(
        f"out-of-core index of {args.db} {what}: {rec.factory}, {rec.count} cells in {rec.shards} shards, "
        f"model {rec.model}" + (f"; generation {rec.generation}" if rec.generation else "")
    )
    return 0
