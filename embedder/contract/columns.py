"""Column names, metadata keys and the schema version of every earthvec file (no imports)."""

from __future__ import annotations

SCHEMA_VERSION = "1.1"
"""1.1 added the GeoParquet ``bbox`` covering column; files of another major version are refused."""

META_KEY = b"earthvec"
GEO_KEY = b"geo"
LABELS_META_KEY = b"earthvec_labels"
PYRAMID_META_KEY = b"earthvec_pyramid"
IMPORT_META_KEY = b"earthvec_import"
"""Per-file provenance of imported rows (product, version, years, source files)."""
EMB_META_KEY = b"emb"
"""Earth Index-style embedding metadata block in exported GeoParquet footers."""

# embeddings columns
H3 = "h3"
LAT = "lat"
LON = "lon"
GEOMETRY = "geometry"
BBOX = "bbox"
DATETIME = "datetime"
SOURCE = "source"
MODALITIES = "modalities"
SENSORS = "sensors"
VALID_FRACTION = "valid_fraction"
MODEL = "model"
EMBEDDING = "embedding"
PARTITION = "h3_parent"

# label, prediction and pyramid columns
LABEL = "label"
LABEL_NAME = "label_name"
CONFIDENCE = "confidence"
COUNT = "count"
SPREAD = "spread"
ID = "id"
"""Exported files: the H3 cell as a hex string (the ``id`` column of Earth Index files)."""
