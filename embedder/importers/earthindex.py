"""Earth Index embeddings (Earth Genome): GeoParquet with an ``emb`` metadata block.

Layout (``data/earth_index`` in ``cloudnativegeo/geo-embeddings-survey``: readme, schema.json,
sample_metadata.json): columns ``id`` string, ``embedding`` array<float> (384 for the
SoftCon/DINOv2 model), ``geometry`` WKB tile footprints (EPSG:4326); footer key ``emb``
(JSON: ``version`` 0.0.1, ``model`` {id, version, ...}, ``providers``, ``license``,
``datetime``, ``start_datetime``, ``end_datetime``, ``datasets``, ``embedding_dim``,
``embedding_quantization``). A tile maps to the cell of its footprint's centroid; its time
is the block's ``datetime`` (else ``start_datetime``).

Version: ``--version``, else ``<model id>-<model version>`` from the ``emb`` block.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import pyarrow.parquet as pq

from embedder.contract import EMB_META_KEY
from embedder.errors import SchemaError, SourceError
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

NAME = "earthindex"
NEEDED = ("embedding", "geometry")
OPTIONAL = ("id",)


def emb_block(path: str) -> dict[str, Any] | None:
    """The ``emb`` footer block of a file, or ``None``."""
    raw = (pq.read_schema(path).metadata or {}).get(EMB_META_KEY)
    if raw is None:
        return None
    try:
        return dict(json.loads(raw))
    except ValueError as exc:
        raise SchemaError(f"{path}: the emb metadata block is not JSON ({exc})") from exc


def _time(block: dict[str, Any] | None) -> datetime | None:
    text = (block or {}).get("datetime") or (block or {}).get("start_datetime")
    if not text:
        return None
    when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def _version(block: dict[str, Any] | None) -> str | None:
    model = (block or {}).get("model") or {}
    if not model.get("id"):
        return None
    return f"{model['id']}-{model['version']}" if model.get("version") else str(model["id"])


def _read(path: str, version: str, block: dict[str, Any] | None) -> ChipImport:
    t = read_columns(path, NEEDED, "Earth Index", OPTIONAL)
    lat, lon, size = footprint_centres(t.column("geometry"), path)
    vecs = vectors_of(t.column("embedding"), path)
    dim = (block or {}).get("embedding_dim")
    if dim is not None and int(dim) != vecs.shape[1]:
        raise SchemaError(f"{path}: emb says embedding_dim {dim} but the vectors have {vecs.shape[1]}")
    n = t.num_rows
    ids = t.column("id").to_pylist() if "id" in t.column_names else [None] * n
    label = file_label(path)
    when = _time(block)
    return ChipImport(
        lat=lat,
        lon=lon,
        vectors=vecs,
        datetimes=[when] * n,
        sources=[[label, str(i)] if i is not None else [label] for i in ids],
        sensors=[["sentinel-2"] for _ in range(n)],
        modalities=[["optical"] for _ in range(n)],
        version=version,
        files=[label],
        chip_size_m=size or None,
    )


def read_chips(paths: list[str], *, version: str | None = None) -> ChipImport:
    """Every tile of the Earth Index files among ``paths``.

    Raises:
        SourceError: no version given or in the ``emb`` blocks, or several versions.
        SchemaError: a file lacks the layout's columns or holds bad values.
    """
    files = expand_paths(paths, PARQUET_SUFFIXES, NAME)
    blocks = {f: emb_block(f) for f in files}
    found = {version or _version(b) for b in blocks.values()}
    if None in found:
        raise SourceError("an Earth Index file has no emb block naming its model; pass --version")
    if len(found) > 1:
        raise SourceError(
            f"the Earth Index files come from models {sorted(map(str, found))}; import each alone"
        )
    v = str(found.pop())
    return concat([_read(f, v, blocks[f]) for f in files], v)
