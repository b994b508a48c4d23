"""Entry point of the ``earthvec`` command.

Each command lives in its own module ``app.cli.<name>`` exposing ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Modules are imported only when their
command runs, so ``earthvec --help`` starts fast and needs no torch.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMANDS: dict[str, str] = {
    "build": "Cut imagery into H3 chips, embed them and write H3-keyed Parquet.",
    "index": "Build or update the FAISS index (and pyramid levels) of a database.",
    "info": "Counts, model, resolution and partitions of a database.",
    "similar": "Find the places most similar to a cell, a point or examples.",
    "label": "kNN land-cover labelling of every cell from a few seed labels.",
    "sql": "Run DuckDB SQL over the embeddings, labels and predictions.",
    "explore": "Open the Streamlit explorer on a database.",
    "train": "Train the multimodal embedder and write a checkpoint.",
    "eval": "Evaluate embedders with kNN/linear probes and few-shot curves.",
    "demo": "Build the demo databases from data/ and print example results.",
    "bench": "Run the benchmarks and write a JSON report.",
    "import": "Import another product's embeddings (Satellite Embedding, TESSERA, Major TOM, Clay, ...).",
    "export": "Export a database as GeoParquet with an emb block and a STAC catalogue.",
    "compare": "Compare two databases of one place with the same spatially blocked kNN probe.",
}
MODULES: dict[str, str] = {"import": "import_"}
"""Commands whose module name differs from the command (``import`` is a Python keyword)."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="earthvec", description="Vector-search embedding database for Earth.")
    p.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_ in COMMANDS.items():
        sub.add_parser(name, help=help_, add_help=False)
    return p


READERS = ("similar", "sql", "info")
"""Commands that only read: run once more when a newer generation was published while they read."""


def _generation(args: argparse.Namespace) -> int | None:
    """The published generation of the command's database (None when there is none)."""
    db = getattr(args, "db", None)
    if not db:
        return None
    try:
        from embedder.contract import read_manifest

        m = read_manifest(db)
    except Exception:  # noqa: BLE001 - only a hint for the retry
        return None
    return m.generation if m else None


NUMERIC_LIST_OPTIONS = ("--bbox", "--vector", "--positive", "--negative")
QUIET_LOGGERS = ("rasterio", "fiona", "pyogrio", "urllib3")


def one_line(text: str) -> str:
    """An error message on one line (library messages may hold line breaks)."""
    return " ".join(part.strip() for part in text.strip().splitlines() if part.strip())


def _glue_negative_values(argv: list[str]) -> list[str]:
    """Let ``--bbox -80,-40,-30,10`` mean ``--bbox=-80,-40,-30,10``.

    argparse takes a value that starts with ``-`` and holds a comma for an option; these
    options' values are comma-separated numbers, often negative (west, south).
    """
    out: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in NUMERIC_LIST_OPTIONS and nxt.startswith("-") and nxt[1:2].isdigit():
            out.append(f"{a}={nxt}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def check_db_path(args: argparse.Namespace) -> None:
    """Refuse a database path that is a file (every command's ``db`` is a folder).

    Raises:
        InputNotFoundError: naming the file.
    """
    from pathlib import Path

    from embedder.errors import InputNotFoundError

    db = getattr(args, "db", None)
    if isinstance(db, str) and Path(db).is_file():
        raise InputNotFoundError(
            f"{db} is a file, not a database folder; give the folder that earthvec build writes"
        )


def main(argv: list[str] | None = None) -> int:
    """Run one ``earthvec`` command; returns the process exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    top = _parser()
    if not argv or argv[0] in ("-h", "--help"):
        top.print_help()
        return 0
    verbose = False
    while argv and argv[0] in ("-v", "--verbose"):
        verbose = True
        argv.pop(0)
    name = argv[0]
    if name not in COMMANDS:
        top.error(f"unknown command {name!r}; choose from {', '.join(COMMANDS)}")
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    if not verbose:  # GDAL's own error chatter: the earthvec error names the file and the fix
        for lib in QUIET_LOGGERS:
            logging.getLogger(lib).setLevel(logging.WARNING)
    modname = f"app.cli.{MODULES.get(name, name)}"
    try:
        module = importlib.import_module(modname)
    except ModuleNotFoundError as exc:
        if exc.name == modname:
            print(f"earthvec: command {name!r} is not available in this version", file=sys.stderr)
            return 2
        raise
    parser = argparse.ArgumentParser(prog=f"earthvec {name}", description=COMMANDS[name])
    module.add_arguments(parser)
    args = parser.parse_args(_glue_negative_values(argv[1:]))
    from embedder.errors import EarthvecError

    for attempt in (0, 1):
        seen = _generation(args)
        try:
            check_db_path(args)
            return int(module.run(args) or 0)
        except KeyboardInterrupt:
            msg = "interrupted; the database is as before, finished shards are kept: run again to resume"
            print(f"earthvec {name}: {msg}", file=sys.stderr)
            return 130
        except Exception as exc:  # noqa: BLE001 - re-raised unless it is a known case
            if attempt == 0 and name in READERS and seen is not None and _generation(args) != seen:
                logging.getLogger("earthvec").info("a new generation was published while reading; again")
                continue  # a file of the generation read vanished after two newer ones: read again
            if isinstance(exc, EarthvecError):
                print(f"earthvec {name}: error: {one_line(str(exc))}", file=sys.stderr)
                return 1
            raise
    return 1


if __name__ == "__main__":
    raise SystemExit(main())
