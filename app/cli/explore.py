"""``earthvec explore DB``: open the Streamlit explorer on a database."""

from __future__ import annotations

import argparse

from app.limits import DEFAULT_HOST, LOOPBACK, MAX_UPLOAD_MB, UPLOAD_ENV

HELP = "Open the Streamlit explorer on a database."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``earthvec explore``."""
    parser.add_argument("db", help="database folder (built by earthvec build)")
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default 8501)")
    parser.add_argument(
        "--host",
        "--address",
        dest="host",
        default=DEFAULT_HOST,
        help=f"address to listen on (default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens it "
        "to the network, where anyone who reaches it can read the database)",
    )
    parser.add_argument(
        "--max-upload-mb",
        type=int,
        default=MAX_UPLOAD_MB,
        help=f"largest seed file accepted by the Label page, in MB (default {MAX_UPLOAD_MB})",
    )
    parser.add_argument(
        "--browser",
        action="store_true",
        help="also open a web browser (Streamlit may then ask once for an e-mail address; "
        "by default it serves headless and prints the address)",
    )


def command(args: argparse.Namespace) -> list[str]:
    """The ``python -m streamlit run ...`` command line for ``args``."""
    import sys
    from pathlib import Path

    import app

    script = Path(app.__file__).resolve().parent / "streamlit_app.py"
    return [
        sys.executable, "-m", "streamlit", "run", str(script),
        "--server.port", str(args.port),
        "--server.address", args.host,
        "--server.maxUploadSize", str(getattr(args, "max_upload_mb", MAX_UPLOAD_MB)),
        "--server.headless", "false" if args.browser else "true",  # headless: no e-mail prompt
        "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
        "--", "--db", str(Path(args.db).resolve()),
    ]


def run(args: argparse.Namespace) -> int:
    """Check the database, then become the Streamlit server (``exec``) until it is stopped.

    Replacing this process (rather than starting a child) means a signal sent to
    ``earthvec explore`` reaches the server itself: nothing is left running.
    """
    import os
    import sys

    from embedder import contract

    dbs = contract.find_databases(args.db)  # fail early with a clear message for a bad path
    for db in dbs:
        contract.read_meta(db)
    names = ", ".join(p.name for p in dbs) if len(dbs) > 1 else str(args.db)
    if args.max_upload_mb < 1:
        raise SystemExit(f"earthvec explore: --max-upload-mb {args.max_upload_mb}: give at least 1")
    if args.host not in LOOPBACK:
        print(
            f"earthvec explore: warning: listening on {args.host}, so other machines can open the "
            "explorer and read this database (its SQL console stays read-only and sandboxed); "
            f"use --host {DEFAULT_HOST} to keep it local",
            file=sys.stderr,
        )
    print(f"earthvec explore: serving {names} at http://{args.host}:{args.port}", flush=True)
    os.environ[UPLOAD_ENV] = str(args.max_upload_mb)  # the upload handler checks it too
    cmd = command(args)
    if sys.platform == "win32":  # no exec on Windows: wait for a child instead
        import subprocess

        return subprocess.call(cmd)
    os.execv(cmd[0], cmd)
    return 0  # not reached
