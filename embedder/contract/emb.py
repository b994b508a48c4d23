"""Embedding metadata for other tools: the Earth Index ``emb`` footer block and STAC ``emb:`` fields.

Two published conventions describe an embedding product:

* the ``emb`` key in a GeoParquet footer (Earth Genome's Earth Index files; JSON: ``version``
  0.0.1, ``model``, ``providers``, ``license``, ``datetime``, ``start_datetime``,
  ``end_datetime``, ``datasets``, ``embedding_dim``, ``embedding_quantization``; see
  ``cloudnativegeo/geo-embeddings-survey``, ``data/earth_index/schema.json``);
* the STAC Embedding extension v0.0.1 (collection: ``emb:type``, ``emb:dimensions``,
  ``data_type``, ``gsd``, ``emb:chip_layout``, ``emb:temporal_resolution``; item:
  ``emb:quantization``; links ``emb:model`` and ``emb:source-data``).

The extension's JSON schema is not reachable offline; :data:`STAC_SCHEMA_FILE` is our
transcription of its requirements document, used to validate exports with pystac.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

EMB_BLOCK_VERSION = "0.0.1"
EMB_BLOCK_REQUIRED = (
    "version", "model", "providers", "datetime", "start_datetime", "end_datetime", "datasets",
    "embedding_dim", "embedding_quantization",
)  # fmt: skip
"""Keys the Earth Index ``emb`` schema requires."""

STAC_EXTENSION = "https://stac-extensions.github.io/embeddings/v0.0.1/schema.json"
STAC_SCHEMA_FILE = "stac_embeddings_v0.0.1.json"
EMB_TYPES = ("pixel", "chip")
LAYOUT_TYPES = ("regular_grid", "variable_grid", "named_grid")
REL_MODEL = "emb:model"
REL_SOURCE_DATA = "emb:source-data"
ASSET_KEY = "embeddings"
PARQUET_MEDIA_TYPE = "application/vnd.apache.parquet"


def emb_block(
    *,
    model: dict[str, Any],
    providers: list[dict[str, Any]],
    license: str,
    start: str | None,
    end: str | None,
    datasets: list[dict[str, Any]],
    dim: int,
    quantization: str = "None",
) -> dict[str, Any]:
    """The ``emb`` footer block of an exported file (Earth Index style).

    Args:
        model: ``id`` and ``source`` (required), ``version``, ``name``, ``description``, ``config``.
        providers: STAC provider objects (``name``, ``url``, ``roles``).
        license: SPDX identifier or ``other``.
        start: ISO start of the rows' time range (``None`` when the rows have no time).
        end: ISO end of the time range.
        datasets: ``dataset_id``, ``dataset_source``, ``dataset_name`` of the source data.
        dim: vector length.
        quantization: how the stored vectors are quantised (``None``: float32 as stored).
    """
    return {
        "version": EMB_BLOCK_VERSION,
        "model": model,
        "providers": providers,
        "license": license,
        "datetime": start if start == end else None,
        "start_datetime": start,
        "end_datetime": end,
        "datasets": datasets,
        "embedding_dim": int(dim),
        "embedding_quantization": quantization,
    }


def emb_metadata(block: dict[str, Any]) -> dict[bytes, bytes]:
    """``{b"emb": JSON}`` for a Parquet footer."""
    from embedder.contract.columns import EMB_META_KEY

    return {EMB_META_KEY: json.dumps(block, sort_keys=True).encode()}


def stac_extension_schema() -> dict[str, Any]:
    """Our JSON schema of the STAC Embedding extension v0.0.1 (see the module docstring)."""
    text = resources.files("embedder.contract").joinpath(STAC_SCHEMA_FILE).read_text()
    return dict(json.loads(text))
