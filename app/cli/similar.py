"""``earthvec similar DB (--cell H3 | --lat LAT --lon LON | --positive X ...) [--coarse RES] [filters]``."""

from __future__ import annotations

import argparse

HELP = "Find the places most similar to a cell, a point or examples."

FORMATS = ("table", "json", "csv")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """Options of ``earthvec similar``."""
    p.add_argument("db", help="database folder (built by earthvec build)")
    q = p.add_argument_group("query (give one)")
    q.add_argument("--cell", help="H3 cell of the database to start from, e.g. 8828308281fffff")
    q.add_argument("--lat", type=float, help="latitude of a point (with --lon)")
    q.add_argument("--lon", type=float, help="longitude of a point (with --lat)")
    q.add_argument(
        "--positive",
        action="append",
        metavar="CELL|LAT,LON",
        help="positive example (repeatable); cells or 'lat,lon' points",
    )
    q.add_argument(
        "--negative",
        action="append",
        metavar="CELL|LAT,LON",
        help="negative example (repeatable) pushed away from",
    )
    q.add_argument(
        "--vector",
        metavar="FILE.npy|V1,V2,...",
        help="raw query vector: a .npy file or comma-separated numbers",
    )
    p.add_argument("-k", type=int, default=10, help="number of results (default 10)")
    c = p.add_argument_group("coarse-to-fine search (optional)")
    c.add_argument(
        "--coarse",
        type=int,
        metavar="RES",
        help="rank parent cells at H3 resolution RES first (pyramid level, built when missing), "
        "then search exactly inside the best --parents of them",
    )
    c.add_argument(
        "--parents", type=int, default=8, metavar="N", help="parents searched with --coarse (default 8)"
    )
    add_filter_arguments(p)
    p.add_argument("--format", choices=FORMATS, default="table", help="output format")
    p.add_argument(
        "--rebuild-index",
        action="store_true",
        help="rebuild the FAISS index from the embeddings first (kept in memory when another "
        "process is writing the database; earthvec index DB stores it)",
    )
    p.add_argument("--factory", help="FAISS factory string for a (re)build, e.g. HNSW32 or IVF1024,Flat")
    p.add_argument(
        "--out-of-core",
        action="store_true",
        help="answer from the out-of-core index (earthvec index DB --out-of-core); the default when "
        "the database has one and no in-RAM index; --cell queries only",
    )
    p.add_argument(
        "--nprobe", type=int, metavar="N", help="lists visited by an out-of-core search (default: the plan's)"
    )


def add_filter_arguments(p: argparse.ArgumentParser) -> None:
    """Region, time and attribute filters shared by ``similar`` and ``label``."""
    f = p.add_argument_group("filters")
    f.add_argument("--region", metavar="H3", help="keep cells inside this (coarser) H3 cell")
    f.add_argument("--bbox", metavar="MINLON,MINLAT,MAXLON,MAXLAT", help="keep cells centred in a box")
    f.add_argument("--start", metavar="DATE", help="keep rows dated on or after DATE (ISO)")
    f.add_argument("--end", metavar="DATE", help="keep rows dated on or before DATE (ISO)")
    f.add_argument("--min-valid", type=float, metavar="F", help="keep rows with valid_fraction >= F")
    f.add_argument(
        "--where", metavar="EXPR", help="numeric clauses, e.g. 'valid_fraction >= 0.9 and lat < 50'"
    )


def parse_example(text: str) -> str | tuple[float, float]:
    """``'lat,lon'`` -> a point tuple; anything else is taken as an H3 cell."""
    from embedder.errors import QueryError

    if "," not in text:
        return text.strip()
    try:
        lat, lon = (float(x) for x in text.split(","))
    except ValueError as exc:
        raise QueryError(f"example {text!r} is neither an H3 cell nor 'lat,lon'") from exc
    return (lat, lon)


def filter_from_args(args: argparse.Namespace):  # noqa: ANN201 (index types imported lazily)
    """The :class:`index.filters.Filter` described by the filter options."""
    from embedder.errors import QueryError
    from index.filters import Filter

    bbox = None
    if args.bbox:
        try:
            x0, y0, x1, y1 = (float(v) for v in args.bbox.split(","))
        except ValueError as exc:
            raise QueryError(f"--bbox {args.bbox!r}: give four numbers MINLON,MINLAT,MAXLON,MAXLAT") from exc
        bbox = (x0, y0, x1, y1)
    return Filter(
        region=args.region,
        bbox=bbox,
        start=args.start,
        end=args.end,
        min_valid_fraction=args.min_valid,
        where=args.where,
    )


def _vector(text: str):  # noqa: ANN202
    from pathlib import Path

    import numpy as np

    from embedder.errors import QueryError

    if text.endswith(".npy"):
        if not Path(text).is_file():
            raise QueryError(f"--vector file {text} does not exist")
        return np.load(text).astype(np.float32).reshape(-1)
    try:
        return np.array([float(v) for v in text.split(",")], dtype=np.float32)
    except ValueError as exc:
        raise QueryError(f"--vector {text[:40]!r}: give a .npy file or comma-separated numbers") from exc


def print_frame(df, fmt: str) -> None:  # noqa: ANN001
    """Print a result frame as an aligned table, JSON records or CSV."""
    import sys

    import numpy as np

    out = df.copy()
    for col in out.columns if len(out) else []:
        if bool(out[col].map(lambda v: isinstance(v, list | tuple | np.ndarray)).astype(bool).any()):
            out[col] = out[col].map(lambda v: ";".join(map(str, v)) if v is not None else "")
    if fmt == "json":
        print(out.to_json(orient="records", date_format="iso", indent=1))
    elif fmt == "csv":
        out.to_csv(sys.stdout, index=False)
    else:
        print(out.to_string(index=False, max_colwidth=60) if len(out) else "(no results)")


def run(args: argparse.Namespace) -> int:
    """Run the query and print the results."""
    from embedder.errors import QueryError
    from embedder.h3grid import parse_cell
    from index.ondisk_db import answers_queries, similar_ondisk
    from index.search import similar
    from index.store import open_index

    if args.k < 1:
        raise QueryError(f"-k {args.k}: ask for at least one result")
    given = [
        args.cell is not None,
        args.lat is not None or args.lon is not None,
        bool(args.positive),
        args.vector is not None,
    ]
    if sum(given) != 1:
        raise QueryError("give one query: --cell H3, --lat LAT --lon LON, --positive ... or --vector")
    if args.negative and not args.positive:
        raise QueryError("--negative needs at least one --positive example")
    if args.nprobe is not None and args.nprobe < 1:
        raise QueryError(f"--nprobe {args.nprobe}: visit at least one list")
    if args.parents < 1:
        raise QueryError(f"--parents {args.parents}: search at least one parent cell")
    flt = filter_from_args(args)
    if args.cell is not None:
        parse_cell(args.cell)  # a malformed query is refused before the index is opened
    if args.out_of_core or (not args.rebuild_index and not args.factory and answers_queries(args.db)):
        if args.cell is None or args.coarse is not None or not flt.empty:
            raise QueryError(
                "the out-of-core index answers --cell queries without --coarse or filters; "
                f"for the others build the in-RAM index: earthvec index {args.db}"
            )
        print_frame(similar_ondisk(args.db, args.cell, args.k, nprobe=args.nprobe), args.format)
        return 0
    query = {
        "cell": args.cell,
        "lat": args.lat,
        "lon": args.lon,
        "vector": _vector(args.vector) if args.vector else None,
        "positives": [parse_example(x) for x in args.positive or []],
        "negatives": [parse_example(x) for x in args.negative or []],
    }
    vi = open_index(
        args.db, rebuild=True if args.rebuild_index else None, factory=args.factory, progress=True
    )
    if args.coarse is None:
        df = similar(vi, k=args.k, flt=None if flt.empty else flt, **query)
    else:
        df = _coarse_to_fine(vi, query, args, None if flt.empty else flt)
    print_frame(df, args.format)
    return 0


def _coarse_to_fine(vi, query: dict, args: argparse.Namespace, flt):  # noqa: ANN001, ANN202
    """Pyramid search: rank parents at ``--coarse``, then search inside the best ``--parents``."""
    import sys

    from embedder.errors import DatabaseLockedError, QueryError
    from index.pyramid import build_pyramid, level_state, similar_coarse_to_fine
    from index.search import query_for

    if not 0 <= args.coarse < vi.resolution:
        raise QueryError(
            f"--coarse {args.coarse}: give a resolution coarser than the database's ({vi.resolution})"
        )
    if flt is not None:
        flt.validate(vi.resolution)
    q, skip = query_for(vi, **query)
    state = level_state(vi.db, args.coarse)
    if state != "fresh":  # built under the writer lock, never waiting for another writer
        print(f"building pyramid level {args.coarse} of {vi.db} ({state})", file=sys.stderr)
        try:
            build_pyramid(vi, [args.coarse], wait=False)
        except DatabaseLockedError as exc:
            raise DatabaseLockedError(
                f"pyramid level {args.coarse} of {vi.db} is {state} and {exc}; or build it later: "
                f"earthvec index {vi.db} --pyramid {args.coarse}"
            ) from None
    hits = similar_coarse_to_fine(
        vi, q[None, :], args.k, coarse_res=args.coarse, n_parents=args.parents, exclude=[skip], flt=flt
    )
    return hits.frame(with_query=False)
