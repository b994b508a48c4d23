"""Where earthvec finds its sample data and shipped files, installed or in a checkout.

Shipped files the library needs (sensor presets, layer tables, the ``earthvec-mm``
checkpoint) are package data, read through :mod:`importlib.resources`. Sample data (the
EuroSAT chips, the global layers) is large and lives in a data folder found in this order:

1. the folder passed explicitly (``--data`` on the command line);
2. ``$EARTHVEC_DATA``;
3. the checkout's ``data/`` when earthvec runs from a source checkout (a ``pyproject.toml``
   beside the package) ...
4. ... or ``./data`` under the current directory.
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

from embedder.errors import InputNotFoundError

DATA_ENV = "EARTHVEC_DATA"
DATA_DIR_NAME = "data"


def checkout_root() -> Path | None:
    """The source checkout holding this package, or ``None`` when installed elsewhere."""
    root = Path(__file__).resolve().parents[1]
    return root if (root / "pyproject.toml").is_file() and (root / "embedder").is_dir() else None


def candidate_data_dirs(explicit: str | Path | None = None) -> list[Path]:
    """Data folders to try, in order (see the module docstring)."""
    out: list[Path] = []
    if explicit is not None:
        return [Path(explicit)]
    if os.environ.get(DATA_ENV):
        out.append(Path(os.environ[DATA_ENV]))
    root = checkout_root()
    if root is not None:
        out.append(root / DATA_DIR_NAME)
    out.append(Path.cwd() / DATA_DIR_NAME)
    return out


def data_dir(explicit: str | Path | None = None, *, must_exist: bool = True) -> Path:
    """The sample-data folder.

    Args:
        explicit: a folder given by the user; used as is.
        must_exist: raise when no candidate exists (else return the first candidate).

    Raises:
        InputNotFoundError: naming the places looked at and how to point earthvec at the data.
    """
    cands = candidate_data_dirs(explicit)
    for c in cands:
        if c.is_dir():
            return c
    if not must_exist:
        return cands[0]
    raise InputNotFoundError(
        f"no earthvec data folder found (looked at {', '.join(map(str, cands))}); pass --data DIR "
        f"or set {DATA_ENV}=DIR (the checkout's data/ folder)"
    )


def package_file(package: str, *parts: str) -> Traversable:
    """A file shipped inside an earthvec package (package data)."""
    node = resources.files(package)
    for p in parts:
        node = node.joinpath(p)
    return node
