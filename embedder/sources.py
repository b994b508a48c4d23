"""Resolve user sources (paths, globs, URLs) into raster items of a sensor preset.

A *raster item* is one logical multi-band raster: a single stacked file (EuroSAT) or a
group of one-file-per-band GeoTIFFs sharing a name (BigEarthNet, Landsat). Grouping and
band naming come from the sensor table (``layout`` and ``band_suffix_regex``).
"""

from __future__ import annotations

import glob
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import rasterio

from embedder.errors import InputNotFoundError, RasterError, SensorError
from embedder.sensors import Sensor, get_sensor, sensor_names

log = logging.getLogger(__name__)

URL_PREFIXES = ("http://", "https://", "s3://", "gs://", "/vsi")


@dataclass
class RasterItem:
    """One logical raster of one sensor.

    Attributes:
        key: the item's name (file path, or the shared path prefix of its band files).
        sensor: the sensor preset.
        band_files: band name -> (path, 1-based band index in that file).
        datetime: acquisition time when known.
    """

    key: str
    sensor: Sensor
    band_files: dict[str, tuple[str, int]] = field(default_factory=dict)
    datetime: datetime | None = None

    @property
    def paths(self) -> list[str]:
        """The distinct files of the item, in band order."""
        seen: dict[str, None] = {}
        for b in self.sensor.band_names:
            if b in self.band_files:
                seen.setdefault(self.band_files[b][0])
        return list(seen)


def is_url(path: str) -> bool:
    """True for remote paths handled by GDAL (http, s3, /vsi...)."""
    return path.startswith(URL_PREFIXES)


def resolve_sources(patterns: list[str]) -> list[str]:
    """Expand paths and globs (``**`` allowed) into a sorted list of files.

    Raises:
        InputNotFoundError: when a path does not exist or a glob matches nothing.
    """
    if not patterns:
        raise InputNotFoundError("no --source given; pass a GeoTIFF path or a glob such as 'scenes/**/*.tif'")
    out: list[str] = []
    for pat in patterns:
        if is_url(pat):
            out.append(pat)
            continue
        if any(ch in pat for ch in "*?["):
            hits = sorted(p for p in glob.glob(pat, recursive=True) if Path(p).is_file())
            if not hits:
                raise InputNotFoundError(
                    f"the glob {pat!r} matches no file; check the path (quote it so the shell does "
                    "not expand it) and use '**' to search sub-folders"
                )
            out.extend(hits)
        elif Path(pat).is_dir():
            hits = sorted(str(p) for p in Path(pat).rglob("*") if p.suffix.lower() in (".tif", ".tiff"))
            if not hits:
                raise InputNotFoundError(f"the folder {pat!r} holds no .tif/.tiff file")
            out.extend(hits)
        elif Path(pat).is_file():
            out.append(pat)
        else:
            raise InputNotFoundError(f"source {pat!r} does not exist; give an existing file, folder or glob")
    return list(dict.fromkeys(out))


@dataclass(frozen=True)
class RasterHeader:
    """What one open of a raster file tells: band count, CRS, bounds and tags."""

    count: int
    crs: rasterio.crs.CRS | None
    bounds: tuple[float, float, float, float]
    tags: dict[str, str]


@lru_cache(maxsize=65536)
def raster_header(path: str) -> RasterHeader:
    """Open ``path`` once and keep its header (cached per path).

    Raises:
        RasterError: when the file cannot be read as a raster.
    """
    try:
        with rasterio.open(path) as src:
            b = src.bounds
            return RasterHeader(int(src.count), src.crs, (b.left, b.bottom, b.right, b.top), dict(src.tags()))
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(f"cannot read {path!r} as a raster ({exc}); is it a GeoTIFF?") from exc


def _band_count(path: str) -> int:
    return raster_header(path).count


def _fit_share(sensor: Sensor, paths: list[str]) -> float:
    """Share of ``paths`` whose name (per-band layout) or band count (stack) fits ``sensor``."""
    if sensor.layout == "per_band_file":
        rx = re.compile(sensor.band_suffix_regex or "$^")
        hits = [m for p in paths if (m := rx.search(Path(p).name)) and m.group(1) in sensor.band_names]
        return len(hits) / len(paths)
    if sensor.layout == "stack":
        return float(_band_count(paths[0]) == len(sensor.bands))
    return 0.0  # other layouts (e.g. built-in global grids) are never user files


def detect_sensor(paths: list[str]) -> Sensor:
    """Pick the sensor preset that fits the most files (band-file names or band count).

    Raises:
        SensorError: when none or several presets fit equally well; the message lists them.
    """
    shares = {name: _fit_share(get_sensor(name), paths) for name in sensor_names()}
    best = max(shares.values())
    fits = [n for n, v in shares.items() if v == best and v >= 0.5]
    if len(fits) != 1:
        why = "none fits" if not fits else f"several fit ({', '.join(fits)})"
        raise SensorError(
            f"cannot tell the sensor of {paths[0]!r}: {why}; pass --sensor, one of "
            f"{', '.join(sensor_names())}"
        )
    return get_sensor(fits[0])


def group_items(paths: list[str], sensor: Sensor) -> list[RasterItem]:
    """Group files into raster items following the sensor's layout.

    Per-band files whose names carry no known band suffix (e.g. a QA band) are skipped
    with a log message.

    Raises:
        RasterError: a stacked file whose band count differs from the preset.
        InputNotFoundError: when no file fits the sensor.
    """
    items: list[RasterItem] = []
    if sensor.layout == "stack":
        for p in paths:
            n = _band_count(p)
            if n != len(sensor.bands):
                raise RasterError(
                    f"{p!r} has {n} bands but sensor preset {sensor.name!r} expects "
                    f"{len(sensor.bands)} ({','.join(sensor.band_names)}); pass --bands with the file's "
                    "band order or choose another --sensor"
                )
            item = RasterItem(p, sensor, {b: (p, i + 1) for i, b in enumerate(sensor.band_names)})
            items.append(item)
    else:
        rx = re.compile(sensor.band_suffix_regex or "$^")
        groups: dict[str, RasterItem] = {}
        skipped = []
        for p in paths:
            m = rx.search(Path(p).name)
            if not m or m.group(1) not in sensor.band_names:
                skipped.append(p)
                continue
            key = str(Path(p).parent / Path(p).name[: m.start()])
            groups.setdefault(key, RasterItem(key, sensor)).band_files[m.group(1)] = (p, 1)
        if skipped:
            log.info(
                "skipped %d file(s) without a %s band suffix, e.g. %s", len(skipped), sensor.name, skipped[0]
            )
        items = list(groups.values())
    if not items:
        raise InputNotFoundError(
            f"no file fits sensor {sensor.name!r} (bands {','.join(sensor.band_names)}); check --sensor"
        )
    for it in items:
        it.datetime = item_datetime(it)
    return items


def _parse_time(text: str, fmt: str | None) -> datetime | None:
    try:
        t = datetime.fromisoformat(text) if fmt in (None, "iso") else datetime.strptime(text, fmt)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


_SIDECAR_PATTERNS = (
    ("*_MTL.txt", re.compile(r"DATE_ACQUIRED\s*=\s*(\d{4}-\d{2}-\d{2})"), "%Y-%m-%d"),
    ("*metadata.json", re.compile(r'"acquisition_(?:date|time)"\s*:\s*"([^"]+)"'), "iso"),
)


def item_datetime(item: RasterItem) -> datetime | None:
    """Acquisition time: file-name pattern, then a metadata sidecar, then the TIFF tag."""
    s = item.sensor
    if s.datetime_regex:
        m = re.search(s.datetime_regex, Path(item.key).name) or re.search(s.datetime_regex, item.key)
        if m and (t := _parse_time(m.group(1), s.datetime_format)):
            return t
    first = item.paths[0] if item.paths else item.key
    folder = Path(first).parent
    if not is_url(first) and folder.is_dir():
        for pattern, rx, fmt in _SIDECAR_PATTERNS:
            for side in sorted(folder.glob(pattern))[:1]:
                m = rx.search(side.read_text(errors="ignore"))
                if m and (t := _parse_time(m.group(1), fmt)):
                    return t
    tag = raster_header(first).tags.get("TIFFTAG_DATETIME")
    return _parse_time(tag.replace(":", "-", 2), "%Y-%m-%d %H:%M:%S") if tag else None
