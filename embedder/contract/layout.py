"""Where every file of a database lives (names only; no heavy imports).

A database (``DB``) is a folder::

    DB/embeddings/h3_parent=<hex cell>/part-<key>.parquet   one file per built shard
    DB/index/index.json, DB/index/*.faiss                   FAISS index + sidecar
    DB/index/ondisk/current.json                            the out-of-core index in force
    DB/index/ondisk/build-<fingerprint>/                    one out-of-core build (index.ondisk)
    DB/labels/<name>.parquet                                seeds and label layers
    DB/predictions/<name>.parquet                           kNN maps
    DB/pyramid/res=<r>.parquet                              parent aggregates
    DB/manifest.json                                        the published state (one generation)
    DB/.lock                                                the writer lock (holder's pid, command)
    DB/.journal/<transaction>.jsonl                         finished shards of a running write
    DB/build.json                                           the last build's record
    DB/import.json                                          the last import's record

Readers take the embeddings files from ``manifest.json`` (see
:mod:`~embedder.contract.manifest`); a folder written before manifests existed has none and
is read by listing ``embeddings/``.
"""

from __future__ import annotations

from pathlib import Path

from embedder.contract.columns import PARTITION
from embedder.errors import InputNotFoundError

EMBEDDINGS_DIR = "embeddings"
INDEX_DIR = "index"
LABELS_DIR = "labels"
PREDICTIONS_DIR = "predictions"
PYRAMID_DIR = "pyramid"
BUILD_STATE = "build.json"
IMPORT_STATE = "import.json"
SIDECAR_NAME = "index.json"
ONDISK_DIR = "ondisk"
"""Folder (under ``index/``) of the out-of-core index (:mod:`index.ondisk_db`)."""
ONDISK_CURRENT = "current.json"
"""The record naming the out-of-core build in force (written atomically, last)."""
ONDISK_BUILD_PREFIX = "build-"
"""Prefix of one out-of-core build folder; the rest is the snapshot fingerprint it indexes."""
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"
JOURNAL_DIR = ".journal"
LEVEL_PREFIX = "res="
MODIS_LABELS = "modis_igbp"
"""Name of the MODIS IGBP label layer of a global database (``DB/labels/modis_igbp.parquet``)."""
KOPPEN_LABELS = "koppen"
"""Name of the Koppen climate-zone label layer of a global database."""


def embeddings_dir(db: str | Path) -> Path:
    """Folder of the hive-partitioned embeddings."""
    return Path(db) / EMBEDDINGS_DIR


def index_dir(db: str | Path) -> Path:
    """Folder holding the index files of a database."""
    return Path(db) / INDEX_DIR


def ondisk_dir(db: str | Path) -> Path:
    """Folder of the out-of-core index: ``current.json`` and the build folders."""
    return index_dir(db) / ONDISK_DIR


def ondisk_build_dir(db: str | Path, fingerprint: str) -> Path:
    """Build folder of the out-of-core index of the snapshot with ``fingerprint``.

    The name depends only on the snapshot, so a killed build of the same embeddings is
    resumed in the same folder.
    """
    return ondisk_dir(db) / f"{ONDISK_BUILD_PREFIX}{fingerprint[:16]}"


def labels_dir(db: str | Path) -> Path:
    """Folder of seed and label tables."""
    return Path(db) / LABELS_DIR


def predictions_dir(db: str | Path) -> Path:
    """Folder of kNN prediction maps."""
    return Path(db) / PREDICTIONS_DIR


def level_path(db: str | Path, res: int) -> Path:
    """File of one pyramid level."""
    return Path(db) / PYRAMID_DIR / f"{LEVEL_PREFIX}{res}.parquet"


def manifest_path(db: str | Path) -> Path:
    """The manifest: the one file that says which files make up the database now."""
    return Path(db) / MANIFEST_NAME


def lock_path(db: str | Path) -> Path:
    """The writer lock file of a database."""
    return Path(db) / LOCK_NAME


def journal_dir(db: str | Path) -> Path:
    """Folder of the journals of unfinished write transactions."""
    return Path(db) / JOURNAL_DIR


def shard_path(db: str | Path, parent_hex: str, key: str) -> Path:
    """Path of the file holding one shard (one H3 parent) of one build."""
    return embeddings_dir(db) / f"{PARTITION}={parent_hex}" / f"part-{key}.parquet"


def listed_embedding_files(db: str | Path) -> list[Path]:
    """The embeddings files found by listing ``embeddings/`` (folders without a manifest), sorted."""
    root = embeddings_dir(db)
    return sorted(p for p in root.glob(f"{PARTITION}=*/*.parquet") if not p.name.startswith("."))


def no_embeddings(db: str | Path) -> InputNotFoundError:
    """The error for a database without embeddings, naming the command that builds one."""
    return InputNotFoundError(
        f"no embeddings under {embeddings_dir(db)}; build the database first: "
        f"earthvec build {db} --source ..."
    )


def find_databases(root: str | Path) -> list[Path]:
    """``root`` itself when it is a database, else the databases directly inside it, sorted.

    ``earthvec demo`` writes a folder of databases (``demo_db/eurosat``, ``demo_db/global``);
    the explorer offers each of them.

    Raises:
        InputNotFoundError: when neither ``root`` nor a folder inside it holds embeddings.
    """
    root = Path(root)

    def is_db(p: Path) -> bool:
        return embeddings_dir(p).is_dir() or manifest_path(p).is_file()

    if is_db(root):
        return [root]
    inside = root.glob("*") if root.is_dir() else iter(())
    found = sorted(p for p in inside if p.is_dir() and is_db(p))
    if not found:
        raise InputNotFoundError(
            f"{root} is not an earthvec database (no {EMBEDDINGS_DIR}/ in it or in a folder inside it); "
            f"build the database first: earthvec build {root} --source ..."
        )
    return found


def table_files(folder: str | Path) -> list[Path]:
    """The Parquet tables in a folder of named tables (``labels/``, ``predictions/``), sorted.

    Hidden files (temporaries of an atomic write) are left out.
    """
    return sorted(p for p in Path(folder).glob("*.parquet") if not p.name.startswith("."))


def label_path(db: str | Path, name: str) -> Path:
    """File of the seed or label table ``name`` (``DB/labels/<name>.parquet``)."""
    return labels_dir(db) / f"{name}.parquet"


def prediction_path(db: str | Path, name: str) -> Path:
    """File of the prediction map ``name`` (``DB/predictions/<name>.parquet``)."""
    return predictions_dir(db) / f"{name}.parquet"


def pyramid_levels(db: str | Path) -> list[int]:
    """Resolutions of the pyramid levels a database holds, ascending."""
    files = (Path(db) / PYRAMID_DIR).glob(f"{LEVEL_PREFIX}*.parquet")
    return sorted(int(p.stem[len(LEVEL_PREFIX) :]) for p in files if p.stem[len(LEVEL_PREFIX) :].isdigit())
