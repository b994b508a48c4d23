"""``earthvec index DB [--factory F] [--pyramid RES,RES] [--no-wait]``: build the search index."""

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
    add_writer_arguments(p)


def run(args: argparse.Namespace) -> int:
    """Build or update the index under the database's writer lock and print what it holds."""
    from embedder import contract
    from embedder.errors import QueryError
    from index.store import build_index, index_state, open_index

    wait = not args.no_wait
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
