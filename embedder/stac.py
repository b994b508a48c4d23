"""Raster items from a STAC catalog (static, walked with pystac) or a STAC API (pystac-client).

Items are filtered by collection, bounding box, time window and ``eo:cloud_cover``; each
item's assets are mapped to a sensor preset's bands through the sensor table (band names and
``band_aliases``: ``B04``, ``red`` ...; mask aliases such as ``scl``), or through the asset's
``eo:bands`` names. Asset hrefs stay hrefs: GDAL reads remote COGs with HTTP range requests.
pystac is the optional ``stac`` extra (``pip install 'earthvec[stac]'``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from embedder.dates import in_window, parse_datetime_window
from embedder.errors import InputNotFoundError, SourceError
from embedder.rasterfile import RasterItem
from embedder.sensors import Sensor, get_sensor, sensor_names
from embedder.sources import USER_LAYOUTS, band_lookup

log = logging.getLogger(__name__)

ITEM_SEARCH = "https://api.stacspec.org/v1.0.0/item-search"
IMAGE_SUFFIXES = (".tif", ".tiff")


@dataclass
class StacQuery:
    """What to take from a catalog: collections, box (W, S, E, N degrees), time window, cloud cap."""

    source: str
    collections: list[str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    datetime: str | None = None
    max_cloud: float | None = None
    sensor: str | None = None


def _pystac() -> Any:
    try:
        import pystac
    except ImportError as exc:  # pragma: no cover - the dev extra installs it
        raise SourceError("--stac needs pystac; install it with pip install 'earthvec[stac]'") from exc
    return pystac


def _when(item: Any) -> datetime | None:
    if item.datetime is not None:
        return item.datetime
    start = item.properties.get("start_datetime")
    return datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None


def _overlaps(a: list[float] | None, b: tuple[float, float, float, float]) -> bool:
    if not a:
        return True
    return not (a[2] < b[0] or a[0] > b[2] or a[3] < b[1] or a[1] > b[3])


def _keep(item: Any, q: StacQuery) -> bool:
    if q.collections and item.collection_id not in q.collections:
        return False
    if q.bbox and not _overlaps(item.bbox, q.bbox):
        return False
    if q.datetime and not in_window(_when(item), parse_datetime_window(q.datetime)):
        return False
    cloud = item.properties.get("eo:cloud_cover")
    return not (q.max_cloud is not None and cloud is not None and float(cloud) > q.max_cloud)


def _search(q: StacQuery, root: Any) -> list[Any]:
    """Items of an API via pystac-client search, or of a static catalog by walking it."""
    conforms = root.extra_fields.get("conformsTo", []) if hasattr(root, "extra_fields") else []
    if any(str(c).startswith(ITEM_SEARCH.rsplit("/", 1)[0]) and "item-search" in str(c) for c in conforms):
        from pystac_client import Client

        query = {"eo:cloud_cover": {"lte": q.max_cloud}} if q.max_cloud is not None else None
        search = Client.open(q.source).search(
            collections=q.collections, bbox=q.bbox, datetime=q.datetime, query=query
        )
        return [i for i in search.items() if _keep(i, q)]
    return [i for i in root.get_items(recursive=True) if _keep(i, q)]


def _asset_bands(asset: Any, key: str, lookup: dict[str, str]) -> list[tuple[str, int]]:
    """(band or mask name, 1-based index) that one image asset holds for a preset."""
    eo = asset.extra_fields.get("eo:bands") or []
    if len(eo) > 1:
        names = [lookup.get(str(b.get("name", "")).lower()) for b in eo]
        return [(n, i + 1) for i, n in enumerate(names) if n]
    for cand in (key, *(str(b.get("name", "")) for b in eo)):
        if cand.lower() in lookup:
            return [(lookup[cand.lower()], 1)]
    return []


def _is_image(asset: Any) -> bool:
    return "tiff" in str(asset.media_type or "") or asset.href.lower().endswith(IMAGE_SUFFIXES)


def _map_assets(item: Any, sensor: Sensor) -> tuple[dict[str, tuple[str, int]], dict[str, tuple[str, int]]]:
    lookup = band_lookup(sensor)
    masks = set(sensor.extra.get("masks") or {})
    bands: dict[str, tuple[str, int]] = {}
    mask_files: dict[str, tuple[str, int]] = {}
    for key, asset in item.assets.items():
        if not _is_image(asset):
            continue
        href = asset.get_absolute_href() or asset.href
        for name, idx in _asset_bands(asset, key, lookup):
            (mask_files if name in masks else bands)[name] = (href, idx)
    return bands, mask_files


def item_to_raster(item: Any, sensor: str | None = None) -> RasterItem | None:
    """A STAC item as a raster item of ``sensor`` (or of the preset matching most of its assets).

    Among presets matching as many assets, the one missing the fewest of its own bands wins.
    """
    names = [sensor] if sensor else [n for n in sensor_names() if get_sensor(n).layout in USER_LAYOUTS]
    best: tuple[tuple[int, int], Sensor, dict, dict] | None = None
    for n in names:
        s = get_sensor(n)
        bands, masks = _map_assets(item, s)
        score = (len(bands), len(bands) - len(s.bands))
        if bands and (best is None or score > best[0]):
            best = (score, s, bands, masks)
    if best is None:
        return None
    _, s, bands, masks = best
    present = [b for b in s.band_names if b in bands]
    s = s if len(present) == len(s.bands) else s.with_bands(present)
    key = item.get_self_href() or f"stac:{item.collection_id}/{item.id}"
    return RasterItem(key, s, bands, _when(item), masks)


def stac_items(q: StacQuery) -> list[RasterItem]:
    """Raster items for a STAC query.

    Raises:
        SourceError: when pystac is missing or the catalog cannot be read.
        InputNotFoundError: when no item passes the filters or none has usable assets.
    """
    pystac = _pystac()
    try:
        root = pystac.read_file(q.source)
    except Exception as exc:  # pystac raises many kinds (HTTP, JSON, STAC type)
        raise SourceError(
            f"cannot read the STAC catalog {q.source!r} ({exc}); give a catalog.json or API URL"
        ) from exc
    found = _search(q, root)
    items = [r for i in found if (r := item_to_raster(i, q.sensor)) is not None]
    if len(items) < len(found):
        log.info("skipped %d STAC item(s) without assets matching a sensor preset", len(found) - len(items))
    if not items:
        raise InputNotFoundError(
            f"no STAC item in {q.source!r} passes the filters (collections {q.collections}, bbox {q.bbox}, "
            f"datetime {q.datetime}, max cloud {q.max_cloud}) with assets of a known sensor; widen them"
        )
    return items
