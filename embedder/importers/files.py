"""Finding a product's files and reading facts from their paths (years, versions)."""

from __future__ import annotations

import re
from pathlib import Path

from embedder.errors import InputNotFoundError, SourceError
from embedder.paths import expand_paths as _expand

YEAR_RE = re.compile(r"^(19|20)\d\d$")


def expand_paths(paths: list[str], suffixes: tuple[str, ...], product: str) -> list[str]:
    """Files, folders (searched recursively) and globs (``**`` allowed) as a sorted file list.

    Args:
        paths: what the user gave.
        suffixes: file name endings the product uses (lower case, e.g. ``(".tif", ".tiff")``).
        product: product name for messages.

    Raises:
        InputNotFoundError: a path does not exist, or a folder/glob holds no product file.
    """
    if not paths:
        raise InputNotFoundError(
            f"no {product} file given; pass files, folders or globs after --from {product}"
        )
    return _expand(paths, suffixes, product)


def year_from_path(path: str) -> int | None:
    """The last path part that is a four-digit year (``.../annual/2024/16N/x.tiff`` -> 2024)."""
    years = [int(p) for p in Path(path).parts[:-1] if YEAR_RE.match(p)]
    return years[-1] if years else None


def check_year(year: int, where: str) -> int:
    """``year`` when plausible for an annual product.

    Raises:
        SourceError: otherwise.
    """
    if not 1980 <= int(year) <= 2100:
        raise SourceError(f"{where}: year {year} is not plausible; pass --year YYYY")
    return int(year)


def one_version(versions: dict[str, str], product: str) -> str:
    """The single version of all files (file -> version).

    Raises:
        SourceError: when the files hold two versions (their feature spaces differ).
    """
    distinct = sorted(set(versions.values()))
    if len(distinct) > 1:
        first = {v: next(f for f, x in versions.items() if x == v) for v in distinct}
        listed = ", ".join(f"{v} ({f})" for v, f in first.items())
        raise SourceError(
            f"the {product} files hold several versions: {listed}; versions are different feature "
            "spaces and never mix: import each version into its own database"
        )
    return distinct[0]
