"""Clay embeddings: GeoParquet, one row per chip.

Layout (the Clay v0 embeddings on Source Cooperative; sample
``03WVN_20220610_20220610_v001.gpq`` and its metadata in ``cloudnativegeo/geo-embeddings-survey``):
``index`` int64, ``source_url`` string, ``date`` date32, ``embeddings`` list<float32> (768 for
v0, 1024 for v1.5), ``geometry`` WKB polygons (CRS84). File names are
``<MGRS>_<start>_<end>_v<version>.gpq``. A chip maps to the cell of its footprint's centroid.

Version: ``--version``, else the file name's ``_v<digits>`` suffix.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from pathlib import Path

from embedder.errors import SourceError
from embedder.importers.chips import (
    PARQUET_SUFFIXES,
    ChipImport,
    concat,
    file_label,
    footprint_centres,
    read_columns,
    vectors_of,
)
from embedder.importers.files import expand_paths

NAME = "clay"
NEEDED = ("embeddings", "geometry")
OPTIONAL = ("date", "source_url", "index")
VERSION_RE = re.compile(r"_(v\d+)$")


def version_from_path(path: str) -> str | None:
    """``v001`` from ``03WVN_20220610_20220610_v001.gpq``."""
    m = VERSION_RE.search(Path(path).stem)
    return m.group(1) if m else None


def _when(d: date | datetime | None) -> datetime | None:
    if d is None:
        return None
    if isinstance(d, datetime):
        return d if d.tzinfo else d.replace(tzinfo=timezone.utc)
    return datetime(d.year, d.month, d.day, tzinfo=timezone.utc)


def _read(path: str, version: str) -> ChipImport:
    t = read_columns(path, NEEDED, "Clay", OPTIONAL)
    lat, lon, size = footprint_centres(t.column("geometry"), path)
    n = t.num_rows
    dates = t.column("date").to_pylist() if "date" in t.column_names else [None] * n
    urls = t.column("source_url").to_pylist() if "source_url" in t.column_names else [None] * n
    label = file_label(path)
    return ChipImport(
        lat=lat,
        lon=lon,
        vectors=vectors_of(t.column("embeddings"), path),
        datetimes=[_when(d) for d in dates],
        sources=[[label, str(u)] if u else [label] for u in urls],
        sensors=[[] for _ in range(n)],
        modalities=[[] for _ in range(n)],
        version=version,
        files=[label],
        chip_size_m=size or None,
    )


def read_chips(paths: list[str], *, version: str | None = None) -> ChipImport:
    """Every chip of the Clay GeoParquet files among ``paths``.

    Raises:
        SourceError: no version given or in the names, or several versions.
        SchemaError: a file lacks the layout's columns or holds bad values.
    """
    files = expand_paths(paths, PARQUET_SUFFIXES, NAME)
    found = {version or version_from_path(f) for f in files}
    if None in found:
        raise SourceError("a Clay file name has no _v<version> suffix; pass --version (e.g. --version v001)")
    if len(found) > 1:
        raise SourceError(f"the Clay files hold versions {sorted(map(str, found))}; import each alone")
    v = str(found.pop())
    chips = concat([_read(f, v) for f in files], v)
    if not len(chips.lat):
        raise SourceError(f"the Clay files {files[:3]} hold no chip")
    return chips
