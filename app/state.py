"""Streamlit state of the explorer: which database, cached heavy objects, session keys.

Heavy objects (all rows of the database, the PCA colours, the basemap image) are cached with
``st.cache_resource`` and shared by every session; they are keyed by the database path and
a stamp of its files, so a rebuilt database is reloaded. Per-session choices (query cells,
labels) live in ``st.session_state`` under the keys below.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import streamlit as st

from app.logic import basemap
from app.logic.colour import pca_rgb
from app.logic.rows import Rows, load_rows
from embedder import contract
from embedder.errors import EarthvecError, InputNotFoundError
from index.store import VectorIndex, open_index

DB_ENV = "EARTHVEC_DB"
DB_KEY = "db"
POSITIVES = "positives"
NEGATIVES = "negatives"
LABELS = "labels"
PREDICTIONS = "predictions"
REGION = "region"


def db_from_argv(argv: list[str] | None = None) -> str | None:
    """``--db`` from the script arguments (``streamlit run app.py -- --db DB``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--db")
    args, _ = p.parse_known_args(sys.argv[1:] if argv is None else argv)
    return args.db


@st.cache_data(ttl=60, show_spinner=False)
def databases(root: str) -> list[str]:
    """The databases under ``root`` (itself, or the folders of a demo folder)."""
    return [str(p) for p in contract.find_databases(root)]


def _forget_cells() -> None:
    """Drop the query cells, labels and predictions of the previous database."""
    for key in (POSITIVES, NEGATIVES, LABELS, PREDICTIONS, REGION):
        st.session_state.pop(key, None)


def db_path() -> Path | None:
    """The database to explore: ``--db``, ``$EARTHVEC_DB`` or the session's, or a folder of them.

    A folder of databases (``earthvec explore demo_db``) gets a chooser in the sidebar;
    the choice is kept in the session.
    """
    root = db_from_argv() or os.environ.get(DB_ENV) or st.session_state.get(DB_KEY)
    if not root:
        return None
    try:
        found = databases(str(root))
    except EarthvecError:
        return Path(root)  # require_rows shows the error
    if len(found) > 1:
        if st.session_state.get(DB_KEY) not in found:
            st.session_state[DB_KEY] = found[0]
        st.sidebar.selectbox(
            "Database", found, key=DB_KEY, format_func=lambda p: Path(p).name, on_change=_forget_cells
        )
    else:
        st.session_state[DB_KEY] = found[0]
    return Path(st.session_state[DB_KEY])


def db_stamp(db: Path) -> str:
    """Names, sizes and modification times of the embeddings files (cache key)."""
    try:
        files = contract.embedding_files(db)
    except InputNotFoundError:
        files = []
    return ";".join(f"{f.parent.name}/{f.name}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)


@st.cache_resource(show_spinner="Loading the database ...", max_entries=4)
def _rows(db: str, stamp: str) -> Rows:
    return load_rows(db)


@st.cache_resource(show_spinner="Projecting embeddings to colours ...", max_entries=4)
def _pca(db: str, stamp: str) -> np.ndarray:
    return pca_rgb(_rows(db, stamp).vectors)


def rows(db: Path) -> Rows:
    """All rows of ``db`` (cached across reruns and sessions)."""
    return _rows(str(db), db_stamp(db))


def pca_colours(db: Path) -> np.ndarray:
    """PCA RGB colour of every row of ``db`` (cached)."""
    return _pca(str(db), db_stamp(db))


AUTO_BUILD_MAX = 200_000
"""Databases with at most this many cells get their index built or updated on first search
(seconds); bigger ones use an existing, fresh index or rank exactly with numpy (a FAISS
build of millions of vectors takes minutes on two cores: ``earthvec similar`` builds it)."""


@st.cache_resource(show_spinner="Opening the search index ...", max_entries=4)
def _index(db: str, stamp: str, n_cells: int) -> tuple[VectorIndex | None, str]:
    try:
        return open_index(db, rebuild=None if n_cells <= AUTO_BUILD_MAX else False), ""
    except (EarthvecError, OSError) as exc:
        return None, str(exc)


def search_index(db: Path) -> tuple[VectorIndex | None, str]:
    """The database's FAISS index, or None and why not (see :data:`AUTO_BUILD_MAX`)."""
    return _index(str(db), db_stamp(db), len(rows(db).latest))


@st.cache_resource(show_spinner=False)
def basemap_url() -> str | None:
    """The Blue Marble basemap as a data URL, or None when the image is not shipped."""
    path = basemap.find_basemap()
    return basemap.data_url(str(path)) if path else None


def require_rows() -> tuple[Path, Rows]:
    """The database and its rows; stops the page with a message when there is none."""
    db = db_path()
    if db is None:
        st.info(
            "No database given. Start the explorer with `earthvec explore DB` "
            f"(or set ${DB_ENV})."
        )
        st.stop()
    assert db is not None
    try:
        return db, rows(db)
    except Exception as exc:  # noqa: BLE001 - shown to the user, not swallowed silently
        st.error(f"Cannot open database {db}: {exc}")
        st.stop()
        raise


def session_list(key: str) -> list[str]:
    """A list kept in the session (created empty)."""
    if key not in st.session_state:
        st.session_state[key] = []
    value: list[str] = st.session_state[key]
    return value


def session_dict(key: str) -> dict[str, str]:
    """A dict kept in the session (created empty)."""
    if key not in st.session_state:
        st.session_state[key] = {}
    value: dict[str, str] = st.session_state[key]
    return value
