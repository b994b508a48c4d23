"""The earthvec contract: every on-disk schema, layout name and metadata key, in one place.

Every other module imports names from here instead of spelling column names or paths
itself. The sub-modules hold one idea each:

* :mod:`~embedder.contract.columns`: column names, metadata keys, schema version;
* :mod:`~embedder.contract.layout`: where each file of a database lives;
* :mod:`~embedder.contract.embeddings`: the embeddings schema, metadata, validation, reading;
* :mod:`~embedder.contract.tables`: seeds, label layers, prediction maps, pyramid levels;
* :mod:`~embedder.contract.geo`: the one GeoParquet 1.1 writer (``bbox`` covering column);
* :mod:`~embedder.contract.sidecar`: the FAISS index sidecar and the dataset fingerprint;
* :mod:`~embedder.contract.manifest`: ``DB/manifest.json``, the published generation;
* :mod:`~embedder.contract.snapshot`: what readers see (one generation, pinned per operation);
* :mod:`~embedder.contract.report`: the build record ``DB/build.json``;
* :mod:`~embedder.contract.io`: durable atomic writes (fsync, ``os.replace``, fsync of the folder);
* :mod:`~embedder.contract.imports`: pooling columns and provenance of imported rows;
* :mod:`~embedder.contract.emb`: the ``emb`` footer block and STAC ``emb:`` fields of exports.

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
from embedder.contract.imports import import_metadata, with_import_metadata, with_pooling_columns
from embedder.contract.io import (
    atomic_write_bytes,
    copy_atomic,
    fsync_dir,
    fsync_file,
    make_dirs,
    publish_file,
    sha256_file,
    temp_path,
    utcnow,
    write_table_atomic,
)
from embedder.contract.layout import (
    BUILD_STATE,
    EMBEDDINGS_DIR,
    IMPORT_STATE,
    INDEX_DIR,
    JOURNAL_DIR,
    KOPPEN_LABELS,
    LABELS_DIR,
    LEVEL_PREFIX,
    LOCK_NAME,
    MANIFEST_NAME,
    MODIS_LABELS,
    ONDISK_BUILD_PREFIX,
    ONDISK_CURRENT,
    ONDISK_DIR,
    PREDICTIONS_DIR,
    PYRAMID_DIR,
    SIDECAR_NAME,
    embeddings_dir,
    find_databases,
    index_dir,
    journal_dir,
    label_path,
    labels_dir,
    level_path,
    lock_path,
    manifest_path,
    ondisk_build_dir,
    ondisk_dir,
    prediction_path,
    predictions_dir,
    pyramid_levels,
    shard_path,
    table_files,
)
from embedder.contract.manifest import (
    Derived,
    FileEntry,
    Manifest,
    Partition,
    ShardRecord,
    fingerprint,
    read_manifest,
    write_manifest,
)
from embedder.contract.report import BuildReport
from embedder.contract.sidecar import Sidecar
from embedder.contract.snapshot import (
    Snapshot,
    embedding_files,
    file_signature,
    file_signatures,
    load_snapshot,
    pinned,
    snapshot,
)
from embedder.contract.tables import label_layer_schema, prediction_schema, pyramid_schema, seeds_schema

__all__ = [
    "BBOX_FIELDS", "BBOX_TYPE", "BUILD_STATE", "EMBEDDINGS_DIR", "IMPORT_STATE", "INDEX_DIR", "JOURNAL_DIR",
    "LABELS_DIR",
    "LOCK_NAME", "MANIFEST_NAME", "PREDICTIONS_DIR", "PYRAMID_DIR", "REQUIRED_COLUMNS", "SIDECAR_NAME",
    "BuildReport", "DatasetMeta", "Derived", "FileEntry", "Manifest", "Partition", "ShardRecord",
    "Sidecar", "Snapshot", "add_bbox", "arrow_schema", "atomic_write_bytes", "bbox_array", "copy_atomic",
    "embedding_files", "embeddings_dir", "embeddings_matrix", "ensure_compatible", "file_signature",
    "file_signatures", "find_databases", "fingerprint", "fsync_dir", "fsync_file", "geo_metadata",
    "geo_schema", "import_metadata", "index_dir",
    "journal_dir", "label_layer_schema", "labels_dir", "level_path", "load_snapshot", "lock_path",
    "make_dirs", "make_table", "manifest_path", "open_dataset", "pinned", "predictions_dir",
    "prediction_schema", "publish_file", "pyramid_schema", "read_manifest", "read_meta", "read_table",
    "seeds_schema", "sha256_file", "shard_path", "snapshot", "temp_path", "to_geoparquet", "utcnow",
    "validate_schema", "with_bbox_field", "with_import_metadata", "with_pooling_columns", "write_manifest",
    "write_table_atomic",
    "KOPPEN_LABELS", "LEVEL_PREFIX", "MODIS_LABELS", "label_path", "prediction_path", "pyramid_levels",
    "table_files", "ONDISK_BUILD_PREFIX", "ONDISK_CURRENT", "ONDISK_DIR", "ondisk_build_dir", "ondisk_dir",
]  # fmt: skip
