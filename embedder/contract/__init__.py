"""The earthvec contract: every on-disk schema, layout name and metadata key, in one place.

Every other module imports names from here instead of spelling column names or paths
itself. The sub-modules hold one idea each:

* :mod:`~embedder.contract.columns`: column names, metadata keys, schema version;
* :mod:`~embedder.contract.layout`: where each file of a database lives;
* :mod:`~embedder.contract.embeddings`: the embeddings schema, metadata, validation, reading;
* :mod:`~embedder.contract.tables`: seeds, label layers, prediction maps, pyramid levels;
* :mod:`~embedder.contract.geo`: the one GeoParquet 1.1 writer (``bbox`` covering column);
* :mod:`~embedder.contract.sidecar`: the FAISS index sidecar and the dataset fingerprint;
* :mod:`~embedder.contract.manifest`: the build record ``DB/build.json``;
* :mod:`~embedder.contract.io`: atomic writes.

``from embedder import contract`` then ``contract.H3``, ``contract.read_meta(db)`` ... keeps
working: the names are re-exported here.
"""

from embedder.contract.columns import *  # noqa: F403
from embedder.contract.embeddings import (
    REQUIRED_COLUMNS,
    DatasetMeta,
    arrow_schema,
    embeddings_matrix,
    ensure_compatible,
    make_table,
    open_dataset,
    read_meta,
    read_table,
    validate_schema,
)
from embedder.contract.geo import (
    BBOX_FIELDS,
    BBOX_TYPE,
    add_bbox,
    bbox_array,
    geo_metadata,
    geo_schema,
    to_geoparquet,
    with_bbox_field,
)
from embedder.contract.io import atomic_write_bytes, copy_atomic, temp_path, utcnow, write_table_atomic
from embedder.contract.layout import (
    BUILD_STATE,
    EMBEDDINGS_DIR,
    INDEX_DIR,
    KOPPEN_LABELS,
    LABELS_DIR,
    LEVEL_PREFIX,
    MODIS_LABELS,
    PREDICTIONS_DIR,
    PYRAMID_DIR,
    SIDECAR_NAME,
    embedding_files,
    embeddings_dir,
    find_databases,
    index_dir,
    label_path,
    labels_dir,
    level_path,
    prediction_path,
    predictions_dir,
    pyramid_levels,
    shard_path,
    table_files,
)
from embedder.contract.manifest import BuildReport
from embedder.contract.sidecar import Sidecar, file_signature, file_signatures, fingerprint
from embedder.contract.tables import label_layer_schema, prediction_schema, pyramid_schema, seeds_schema

__all__ = [
    "BBOX_FIELDS", "BBOX_TYPE", "BUILD_STATE", "EMBEDDINGS_DIR", "INDEX_DIR", "LABELS_DIR",
    "PREDICTIONS_DIR", "PYRAMID_DIR", "REQUIRED_COLUMNS", "SIDECAR_NAME", "BuildReport", "DatasetMeta",
    "Sidecar", "add_bbox", "arrow_schema", "atomic_write_bytes", "bbox_array", "copy_atomic",
    "embedding_files", "embeddings_dir", "embeddings_matrix", "ensure_compatible", "file_signature",
    "file_signatures", "find_databases", "fingerprint", "geo_metadata", "geo_schema", "index_dir",
    "label_layer_schema", "labels_dir", "level_path", "make_table", "open_dataset", "predictions_dir",
    "prediction_schema", "pyramid_schema", "read_meta", "read_table", "seeds_schema", "shard_path",
    "temp_path", "to_geoparquet", "utcnow", "validate_schema", "with_bbox_field", "write_table_atomic",
    "KOPPEN_LABELS", "LEVEL_PREFIX", "MODIS_LABELS", "label_path", "prediction_path", "pyramid_levels",
    "table_files",
]  # fmt: skip
