"""DuckDB over a database: views on the Parquet files and H3 functions written in Python.

Views:

* ``embeddings``: every row of ``DB/embeddings`` (hive partitioned, so ``h3_parent`` is a
  column) with ``embedding`` cast to ``FLOAT[D]`` (array functions such as
  ``array_inner_product`` need the fixed size); imported databases add ``count`` and
  ``spread`` (pixels or chips pooled per row) when every file has them;
* ``labels``: seed files stored in ``DB/labels`` (h3, lat, lon, label, file = file stem);
* one view per label file, named by its stem (``modis_igbp``, ``koppen`` in a global
  database): that file's rows as stored (h3, label, label_name);
* ``predictions``: kNN maps in ``DB/predictions`` (h3, lat, lon, geometry, label,
  confidence, file = file stem) made from the published embeddings (stale maps, made from
  an older generation, are left out; ``earthvec info`` names them);
* ``pyramid`` (only once built): parent aggregates of every fresh level (h3, lat, lon,
  geometry, count, spread, embedding, resolution).

H3 functions (Python UDFs; DuckDB's h3 extension would need a download): ``h3_parent(h3,
res)``, ``h3_lat(h3)``, ``h3_lon(h3)``, ``h3_to_string(h3)``, ``h3_from_string(s)``,
``h3_resolution(h3)``, ``h3_area_km2(h3)`` (the cell's area) and ``h3_neighbors(h3)``
(``UBIGINT[]`` of the ring-1 neighbours: 6, or 5 around a pentagon). Cells are UBIGINT as
in Parquet. :data:`EXAMPLES` holds example queries for a global database.

``read_only=True`` (for untrusted SQL) lists the files explicitly, allows exactly those paths,
caps memory and threads and then turns external access off and locks the configuration
(:func:`index.sql_guard.lock_down`): queries cannot read or write other files, install
extensions, reach the network or change a setting. :func:`run_query` caps the rows
returned; :mod:`index.sql_guard` and :mod:`index.sql_worker` add the statement check, the
time limit and a separate process for untrusted queries.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import duckdb
import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from embedder import contract, h3grid
from embedder.contract import PYRAMID_META_KEY
from embedder.errors import QueryError
from index.origin import is_fresh
from index.sql_guard import Limits, fetch_limited, lock_down

DEFAULT_ROW_LIMIT = 10_000
VIEWS = ("embeddings", "labels", "predictions")
RESERVED_VIEWS = (*VIEWS, "pyramid")
_VIEW_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")

EXAMPLES: dict[str, str] = {
    "landcover_area_per_climate": """
SELECT k.label_name AS climate, m.label_name AS land_cover, count(*) AS cells,
       round(sum(h3_area_km2(e.h3))) AS area_km2
FROM embeddings e JOIN koppen k USING (h3) JOIN modis_igbp m USING (h3)
GROUP BY climate, land_cover
QUALIFY row_number() OVER (PARTITION BY climate ORDER BY area_km2 DESC) <= 2
ORDER BY climate, area_km2 DESC""",
    "mean_embedding_per_res2_parent": """
WITH cells AS MATERIALIZED (SELECT h3_parent(h3, 2) AS parent, embedding::FLOAT[] AS e FROM embeddings),
dims AS (SELECT parent, unnest(e) AS v, generate_subscripts(e, 1) AS i FROM cells),
per_dim AS (SELECT parent, i, avg(v) AS v, count(*) AS cells FROM dims GROUP BY parent, i)
SELECT h3_to_string(parent) AS parent, any_value(cells) AS cells,
       list(v ORDER BY i) AS mean_embedding
FROM per_dim GROUP BY parent ORDER BY cells DESC, parent""",
    "least_similar_to_neighbours": """
WITH pairs AS (SELECT h3, unnest(h3_neighbors(h3)) AS nb FROM embeddings)
SELECT h3_to_string(p.h3) AS cell, round(h3_lat(p.h3), 2) AS lat, round(h3_lon(p.h3), 2) AS lon,
       count(*) AS neighbours,
       round(avg(array_cosine_similarity(a.embedding, b.embedding)), 4) AS mean_cos
FROM pairs p JOIN embeddings a ON a.h3 = p.h3 JOIN embeddings b ON b.h3 = p.nb
GROUP BY p.h3 HAVING count(*) >= 3
ORDER BY mean_cos, cell LIMIT 10""",
}
"""Example queries for a global database (``earthvec sql DB "$(...)"``): land-cover area per
Koppen climate zone (top two classes each), the mean embedding of every resolution-2 parent,
and the cells least similar to their ring-1 neighbours."""


def _q(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(_q(f) for f in files) + "]"


def _h3_parent(cells: pa.Array, res: pa.Array) -> pa.Array:
    c = np.asarray(pc.fill_null(cells, 0).to_numpy(zero_copy_only=False), dtype=np.uint64)
    r = np.asarray(pc.fill_null(res, -1).to_numpy(zero_copy_only=False), dtype=np.int64)
    own = ((c >> np.uint64(52)) & np.uint64(0xF)).astype(np.int64)
    ok = np.asarray(cells.is_valid()) & np.asarray(res.is_valid()) & (r >= 0) & (r <= own)
    out = np.zeros(len(c), dtype=np.uint64)
    out[ok] = h3grid.cell_parents(c[ok], r[ok])
    return pa.array(out, type=pa.uint64(), mask=~ok)


def _h3_latlng(cells: pa.Array, i: int) -> pa.Array:
    c = np.asarray(cells.to_numpy(zero_copy_only=False))
    return pa.array([h3i.cell_to_latlng(int(a))[i] for a in c], type=pa.float64())


def _h3_to_string(cells: pa.Array) -> pa.Array:
    return pa.array([h3i.int_to_str(int(a)) for a in cells.to_numpy(zero_copy_only=False)], type=pa.string())


def _h3_from_string(text: pa.Array) -> pa.Array:
    out: list[int | None] = []
    for s in text.to_pylist():
        if s is None:
            out.append(None)
            continue
        try:
            c = h3i.str_to_int(str(s).strip())
        except (ValueError, TypeError):
            c = None
        out.append(c if c is not None and h3i.is_valid_cell(c) else None)
    return pa.array(out, type=pa.uint64())


def _h3_resolution(cells: pa.Array) -> pa.Array:
    c = cells.to_numpy(zero_copy_only=False)
    return pa.array([h3i.get_resolution(int(a)) for a in c], type=pa.int32())


def _h3_area_km2(cells: pa.Array) -> pa.Array:
    c = cells.to_numpy(zero_copy_only=False)
    return pa.array([h3i.cell_area(int(a), unit="km^2") for a in c], type=pa.float64())


def _h3_neighbors(cells: pa.Array) -> pa.Array:
    out = []
    for a in cells.to_numpy(zero_copy_only=False).tolist():
        ring = h3i.grid_disk(int(a), 1)  # the disk works around pentagons, the ring may not
        out.append(sorted(n for n in ring if n != a))
    return pa.array(out, type=pa.list_(pa.uint64()))


def register_h3(con: duckdb.DuckDBPyConnection) -> None:
    """Register the H3 helper functions on a connection (vectorised Arrow UDFs)."""
    ub, i32, f64, vc = (
        duckdb.sqltype("UBIGINT"),
        duckdb.sqltype("INTEGER"),
        duckdb.sqltype("DOUBLE"),
        duckdb.sqltype("VARCHAR"),
    )
    arrow: Any = "arrow"
    special: Any = "special"
    con.create_function("h3_parent", _h3_parent, [ub, i32], ub, type=arrow, null_handling=special)
    con.create_function("h3_lat", lambda c: _h3_latlng(c, 0), [ub], f64, type=arrow)
    con.create_function("h3_lon", lambda c: _h3_latlng(c, 1), [ub], f64, type=arrow)
    con.create_function("h3_to_string", _h3_to_string, [ub], vc, type=arrow)
    con.create_function("h3_from_string", _h3_from_string, [vc], ub, type=arrow, null_handling=special)
    con.create_function("h3_resolution", _h3_resolution, [ub], i32, type=arrow)
    con.create_function("h3_area_km2", _h3_area_km2, [ub], f64, type=arrow)
    con.create_function("h3_neighbors", _h3_neighbors, [ub], duckdb.list_type(ub), type=arrow)


def connect(
    db: str | Path, *, read_only: bool = False, limits: Limits | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with the views and H3 functions of ``db``.

    Args:
        db: database folder.
        read_only: forbid any file or network access beyond the database's own files
            (the files of the generation published now; reconnect to see a newer one) and
            lock the settings.
        limits: memory, threads and time limit of a read-only connection (default
            :class:`index.sql_guard.Limits`).

    Raises:
        InputNotFoundError: ``db`` holds no embeddings.
        ModelMismatchError: the embeddings mix model versions.
    """
    db = Path(db).resolve()
    with contract.pinned(db) as snap:  # one generation: the views list its files
        meta = contract.read_meta(db)
        files = contract.embedding_files(db)
    con = duckdb.connect(":memory:")
    register_h3(con)
    names = [c for c in contract.REQUIRED_COLUMNS if c != contract.EMBEDDING]
    schemas = [pq.read_schema(f).names for f in files]
    names += [c for c in (contract.COUNT, contract.SPREAD) if all(c in s for s in schemas)]  # imported rows
    cols = ", ".join(f'"{c}"' for c in names)
    con.execute(
        f"CREATE VIEW embeddings AS SELECT {cols}, "
        f'"{contract.EMBEDDING}"::FLOAT[{meta.dim}] AS "{contract.EMBEDDING}", '
        f'"{contract.PARTITION}" '
        f"FROM read_parquet({_file_list(files)}, hive_partitioning = true)"
    )
    allowed = list(files)
    for view, folder in (
        ("labels", contract.LABELS_DIR),
        ("predictions", contract.PREDICTIONS_DIR),
    ):
        extra = contract.table_files(db / folder)
        if view == "predictions":  # maps made from other embeddings are stale: left out
            extra = [p for p in extra if is_fresh(p, contract.LABELS_META_KEY, snap)]
        allowed += extra
        if extra:
            con.execute(
                f"CREATE VIEW {view} AS SELECT * EXCLUDE (filename), "
                "parse_filename(filename, true) AS file "
                f"FROM read_parquet({_file_list(extra)}, union_by_name = true, filename = true)"
            )
        else:
            con.execute(
                f'CREATE VIEW {view} AS SELECT NULL::UBIGINT AS "{contract.H3}", NULL::DOUBLE AS '
                f'"{contract.LAT}", NULL::DOUBLE AS "{contract.LON}", NULL::VARCHAR AS label, '
                "NULL::VARCHAR AS file WHERE false"
            )
    for f in sorted(p for p in (db / contract.LABELS_DIR).glob("*.parquet") if not p.name.startswith(".")):
        if _VIEW_NAME.match(f.stem) and f.stem not in RESERVED_VIEWS:
            con.execute(f'CREATE VIEW "{f.stem}" AS SELECT * FROM read_parquet({_q(f)})')
    levels = [
        p
        for p in (contract.level_path(db, r) for r in contract.pyramid_levels(db))
        if is_fresh(p, PYRAMID_META_KEY, snap)
    ]
    if levels:
        allowed += levels
        con.execute(
            "CREATE VIEW pyramid AS SELECT * EXCLUDE (filename, embedding), "
            f'"{contract.EMBEDDING}"::FLOAT[{meta.dim}] AS "{contract.EMBEDDING}", '
            "CAST(regexp_extract(filename, 'res=([0-9]+)', 1) AS INTEGER) AS resolution "
            f"FROM read_parquet({_file_list(levels)}, filename = true)"
        )
    if read_only:
        lock_down(con, allowed, limits or Limits())
    return con


def run_query(
    con: duckdb.DuckDBPyConnection, sql: str, *, limit: int | None = DEFAULT_ROW_LIMIT
) -> tuple[pa.Table, bool]:
    """Run one statement and fetch at most ``limit`` rows.

    Returns:
        The result table and whether rows were cut off by ``limit``.

    Raises:
        QueryError: DuckDB rejects the statement (its message names the problem).
    """
    try:
        return fetch_limited(con, sql, limit)
    except duckdb.Error as exc:
        raise QueryError(f"SQL failed: {str(exc).strip()}") from exc
