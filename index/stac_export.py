"""Export a database for other tools: GeoParquet 1.1 files with an ``emb`` block, and a STAC catalogue.

``export_stac(db, out)`` writes::

    OUT/collection.json                       STAC Collection (Embedding extension v0.0.1)
    OUT/<item id>/<item id>.json              one STAC Item per H3 partition
    OUT/data/<partition>.parquet              the partition's rows as GeoParquet 1.1
    OUT/model.json, OUT/sources.json          (built databases) model card and sensors the links point to

Each data file keeps every earthvec column (``h3``, ``geometry`` WKB in CRS84, the ``bbox``
covering column, ``embedding`` ...), adds ``id`` (the cell as hex text, the key Earth Index
files use), is ordered by cell (spatially coherent) in row groups of :data:`ROW_GROUP`
rows, and carries three footer blocks: ``geo`` (the contract's GeoParquet writer),
``earthvec`` and ``emb`` (Earth Index style). The STAC fields follow the Embedding
extension: ``emb:type`` is ``chip`` (one vector per H3 cell), ``emb:chip_layout`` a
``named_grid`` (``h3-res-<R>``), ``gsd`` the cell's size; links ``emb:model`` and
``emb:source-data`` name the model (or the imported product) and the source data.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h3.api.basic_int as h3i
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import shapely

from embedder import contract, h3grid
from embedder.contract import emb as embspec
from embedder.errors import EarthvecError
from index.vectors import partition_files

ROW_GROUP = 100_000
EARTHVEC_PROVIDER = {
    "name": "earthvec",
    "roles": ["processor"],
    "url": "https://github.com/earthvec/earthvec",
}
H3_DOCS = "https://h3geo.org/docs/core-library/restable"


@dataclass
class ExportReport:
    """What :func:`export_stac` wrote."""

    out: Path
    collection: Path
    items: int = 0
    rows: int = 0
    files: list[Path] = field(default_factory=list)


def _pystac() -> Any:
    try:
        import pystac
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise EarthvecError("export --stac needs pystac: pip install 'earthvec[stac]'") from exc
    return pystac


def _product(meta: contract.DatasetMeta) -> Any:
    """The imported product's facts, or ``None`` for a built database."""
    if not meta.model_config.get("product"):
        return None
    from embedder.importers.products import get_product

    return get_product(str(meta.model_config["product"]))


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    contract.atomic_write_bytes(path, json.dumps(doc, indent=1, sort_keys=True, default=str).encode())


def _describe(meta: contract.DatasetMeta, product: Any, out: Path) -> dict[str, Any]:
    """Model, source-data and licence facts for the STAC links and the ``emb`` block."""
    if product is not None:
        return {
            "model_href": product.model_url, "model_type": "text/html",
            "source_href": product.source_data_url, "source_type": "text/html",
            "license": product.license or "other", "temporal": product.temporal_resolution,
            "providers": [{**product.provider, "roles": ["producer"]}, EARTHVEC_PROVIDER],
            "model": {"id": meta.model_name, "version": meta.model_version, "name": product.title,
                      "source": product.model_url, "description": product.title},
            "datasets": [{"dataset_id": product.name, "dataset_source": product.source_data_url,
                          "dataset_name": product.title}],
        }  # fmt: skip
    card = {"model": meta.model, "name": meta.model_name, "version": meta.model_version, "dim": meta.dim,
            "config": meta.model_config, "normalisation": meta.normalisation}  # fmt: skip
    _write_json(out / "model.json", card)
    _write_json(
        out / "sources.json", {"sensors": meta.sensors, "note": "each row's imagery: its 'source' column"}
    )
    return {
        "model_href": "./model.json", "model_type": "application/json",
        "source_href": "./sources.json", "source_type": "application/json",
        "license": "other", "temporal": "single_acquisition", "providers": [EARTHVEC_PROVIDER],
        "model": {"id": meta.model_name, "version": meta.model_version, "name": meta.model_name,
                  "source": f"urn:earthvec:model:{meta.model}", "description": "earthvec embedder"},
        "datasets": [{"dataset_id": s, "dataset_source": f"urn:earthvec:sensor:{s}", "dataset_name": s}
                     for s in sorted(meta.sensors)],
    }  # fmt: skip


def _partition_table(files: list[Path]) -> pa.Table:
    """All columns of a partition's files (imported files keep ``count``/``spread``), ordered by cell."""
    tables = [pq.read_table(f) for f in files]
    table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
    table = table.sort_by([(contract.H3, "ascending"), (contract.DATETIME, "ascending")])
    ids = pa.array([h3grid.cell_to_str(c) for c in table.column(contract.H3).to_pylist()], type=pa.string())
    return table.add_column(0, pa.field(contract.ID, pa.string(), nullable=False), ids)


def _time_range(table: pa.Table) -> tuple[datetime | None, datetime | None]:
    col = table.column(contract.DATETIME)
    lo, hi = pc.min(col).as_py(), pc.max(col).as_py()
    return lo, hi


def _write_data(path: Path, table: pa.Table, extra: dict[bytes, bytes]) -> None:
    out = contract.to_geoparquet(table, extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = contract.temp_path(path)
    try:
        pq.write_table(out, tmp, compression="zstd", row_group_size=ROW_GROUP)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _footprint(cells: np.ndarray) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON geometry (convex hull of the cells' vertices) and bbox of a partition's rows."""
    pts = np.concatenate(h3grid.cell_rings(cells))
    hull = shapely.convex_hull(shapely.multipoints(pts))
    return shapely.geometry.mapping(hull), [float(v) for v in hull.bounds]


def export_stac(db: str | Path, out_dir: str | Path, *, collection_id: str | None = None) -> ExportReport:
    """Write the database as GeoParquet files plus a STAC Collection and one Item per partition.

    Args:
        db: database folder.
        out_dir: output folder (created; files already there with the same names are replaced).
        collection_id: the STAC collection id (default: the database folder's name).

    Raises:
        EarthvecError: pystac is missing or the database breaks the contract.
    """
    pystac = _pystac()
    db, out = Path(db), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = contract.read_meta(db)
    product = _product(meta)
    facts = _describe(meta, product, out)
    cid = collection_id or re.sub(r"[^A-Za-z0-9_.-]+", "-", db.resolve().name) or "earthvec"
    report = ExportReport(out, out / "collection.json")
    items, boxes, starts, ends = [], [], [], []
    quant = {"method": "none", "original_dtype": "float32", "quantized_dtype": "float32"}
    runtime: dict[str, Any] = {"h3_resolution": meta.h3_resolution, "model": meta.model,
                               "partition_resolution": meta.partition_resolution}  # fmt: skip
    if product is not None:
        runtime.update(pooling=meta.model_config.get("pooling"), source_quantization=product.quantization)
    for parent, files in partition_files(db).items():
        table = _partition_table(files)
        start, end = _time_range(table)
        block = embspec.emb_block(
            model=facts["model"], providers=facts["providers"], license=facts["license"], start=_iso(start),
            end=_iso(end), datasets=facts["datasets"], dim=meta.dim,
        )  # fmt: skip
        data = out / "data" / f"{parent}.parquet"
        _write_data(data, table, {**meta.to_metadata(), **embspec.emb_metadata(block)})
        report.files.append(data)
        report.rows += table.num_rows
        geom, bbox = _footprint(np.asarray(table.column(contract.H3).to_numpy(), dtype=np.uint64))
        boxes.append(bbox)
        props: dict[str, Any] = {"emb:quantization": quant, "emb:runtime_parameters": runtime,
                                 "h3:partition": parent, "earthvec:rows": table.num_rows}  # fmt: skip
        when = start if start == end else None
        if start != end:
            props.update(start_datetime=_iso(start), end_datetime=_iso(end))
        elif start is None:  # STAC needs a time: the rows have none, so the files' write time stands in
            when = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), tz=timezone.utc)
            props["earthvec:datetime"] = "write time of the rows (they carry no acquisition time)"
        starts.append(start or when)
        ends.append(end or when)
        item = pystac.Item(
            id=f"{cid}-{parent}", geometry=geom, bbox=bbox, datetime=when,
            properties=props, stac_extensions=[embspec.STAC_EXTENSION],
        )  # fmt: skip
        item.add_asset(embspec.ASSET_KEY, pystac.Asset(
            href=str(data.resolve()), media_type=embspec.PARQUET_MEDIA_TYPE, roles=["data", "embeddings"],
            title=f"{meta.model} embeddings of H3 partition {parent}",
        ))  # fmt: skip
        items.append(item)
    known = [t for t in starts + ends if t is not None]
    box = np.array(boxes)
    extent = pystac.Extent(
        pystac.SpatialExtent([[*box[:, :2].min(axis=0).tolist(), *box[:, 2:].max(axis=0).tolist()]]),
        pystac.TemporalExtent([[min(known) if known else None, max(known) if known else None]]),
    )
    res = meta.h3_resolution
    collection = pystac.Collection(
        id=cid,
        description=f"earthvec database {db.name}: {report.rows} H3 res-{res} embeddings of {meta.model}",
        extent=extent,
        license=facts["license"],
        providers=[pystac.Provider.from_dict(p) for p in facts["providers"]],
        stac_extensions=[embspec.STAC_EXTENSION],
        extra_fields={
            "emb:type": "chip", "emb:dimensions": meta.dim, "data_type": "float32",
            "gsd": round(math.sqrt(h3i.average_hexagon_area(res, unit="m^2")), 3),
            "emb:chip_layout": {
                "layout_type": "named_grid", "grid_id": f"h3-res-{res}",
                "grid_definition": {"href": H3_DOCS, "rel": "describedby", "type": "text/html"},
            },
            "emb:temporal_resolution": facts["temporal"],
        },
    )  # fmt: skip
    for rel, href, kind, title in (
        (embspec.REL_MODEL, facts["model_href"], facts["model_type"], f"model {meta.model}"),
        (embspec.REL_SOURCE_DATA, facts["source_href"], facts["source_type"], "source data"),
    ):
        collection.add_link(pystac.Link(rel, href, kind, title))
    collection.add_items(items)
    collection.normalize_hrefs(str(out))
    collection.make_all_asset_hrefs_relative()
    collection.save(catalog_type=pystac.CatalogType.SELF_CONTAINED)
    report.items = len(items)
    return report


def validate_export(out_dir: str | Path) -> int:
    """Validate the collection and every item with pystac (core schemas and the ``emb`` extension).

    The extension schema is the contract's local transcription (validation runs offline).

    Returns:
        The number of STAC objects validated.

    Raises:
        pystac.errors.STACValidationError: the first object that does not validate.
    """
    _pystac()
    from pystac.validation import validate_dict
    from pystac.validation.stac_validator import JsonSchemaSTACValidator

    validator = JsonSchemaSTACValidator()
    validator.schema_cache[embspec.STAC_EXTENSION] = embspec.stac_extension_schema()
    out = Path(out_dir)
    docs = [out / "collection.json", *sorted(p for p in out.glob("*/*.json"))]
    for path in docs:
        validate_dict(json.loads(path.read_text()), href=str(path), validator=validator)
    return len(docs)
