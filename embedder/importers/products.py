"""Facts about each embedding product, read from ``products.json`` (data, not code).

Each product names its kind (``pixel``: per-pixel rasters pooled per H3 cell, ``chip``: one
vector per chip mapped to the cell of its centre), dimension, default version, ground
sample distance, temporal resolution, quantisation, input sensors, licence and the
documents the layouts were taken from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

from embedder.errors import SourceError


@dataclass(frozen=True)
class Product:
    """One product's facts (see ``products.json``)."""

    name: str
    title: str
    kind: str
    dim: int | None
    default_version: str | None
    gsd_m: float
    temporal_resolution: str
    quantization: dict[str, Any]
    sensors: list[str]
    modalities: list[str]
    license: str | None
    provider: dict[str, str]
    model_url: str
    source_data_url: str
    docs: str
    layouts: list[str] = field(default_factory=list)
    attribution: str | None = None

    def summary(self) -> dict[str, Any]:
        """JSON-able facts stored in the database metadata."""
        return {
            "product": self.name, "title": self.title, "kind": self.kind, "gsd_m": self.gsd_m,
            "temporal_resolution": self.temporal_resolution, "quantization": self.quantization,
            "license": self.license, "attribution": self.attribution, "docs": self.docs,
        }  # fmt: skip


@cache
def _table() -> dict[str, dict[str, Any]]:
    text = resources.files("embedder.importers").joinpath("products.json").read_text()
    return dict(json.loads(text))


def product_names() -> list[str]:
    """Names accepted by ``earthvec import --from``."""
    return list(_table())


def get_product(name: str) -> Product:
    """The facts of product ``name``.

    Raises:
        SourceError: for an unknown product.
    """
    table = _table()
    if name not in table:
        raise SourceError(f"--from {name!r} is not a known product; choose from {', '.join(table)}")
    return Product(name=name, **table[name])
