"""Resolve user sources (paths, globs, URLs) into raster items of a sensor preset.

A *raster item* is one logical multi-band raster: a single stacked file (EuroSAT, an Earth
Engine export, a two-band VV/VH SAR stack) or a group of one-file-per-band GeoTIFFs sharing a
name (BigEarthNet, Landsat). Any preset takes either: a file whose name ends in a band suffix
(``band_suffix_regex``, or a mask's ``suffix_regex``) is one band of a group; any other file
is a stack whose band order comes from ``--bands``, else from the GeoTIFF band descriptions
(matched to band names and ``band_aliases``), else from the preset. Quality-mask bands
(``masks`` in the sensor table) go to ``RasterItem.mask_files``.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import rasterio

from embedder.errors import InputNotFoundError, RasterError, SensorError, SourceError
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
        mask_files: quality-mask band name (``BQA``, ``SCL``) -> (path, band index).
    """

    key: str
    sensor: Sensor
    band_files: dict[str, tuple[str, int]] = field(default_factory=dict)
    datetime: datetime | None = None
    mask_files: dict[str, tuple[str, int]] = field(default_factory=dict)

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


# GDAL settings for remote COGs: no directory listing per open, HTTP range reads of .tif only
REMOTE_GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".tif,.tiff,.TIF,.TIFF",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
}


def _remote_env() -> None:
    for k, v in REMOTE_GDAL_OPTIONS.items():
        os.environ.setdefault(k, v)


def gdal_message(exc: BaseException) -> str:
    """The most specific one-line message in an exception chain.

    That is GDAL's own text rather than rasterio's "See previous exception for details".
    """
    seen: set[int] = set()
    cur: BaseException | None = exc
    best = ""
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = " ".join(str(cur).split())
        if text and "previous exception" not in text:
            best = text
        cur = cur.__cause__ or cur.__context__
    return best or " ".join(str(exc).split())


@contextmanager
def open_raster(path: str) -> Iterator[rasterio.DatasetReader]:
    """Open a local or remote raster for reading.

    Raises:
        RasterError: when the file cannot be read as a raster.
    """
    if is_url(path):
        _remote_env()
    try:
        src = rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(
            f"cannot read {path!r} as a raster ({gdal_message(exc)}); is it a complete GeoTIFF?"
        ) from exc
    with src:
        try:
            yield src
        except rasterio.errors.RasterioIOError as exc:
            raise RasterError(
                f"cannot read the pixels of {path!r} ({gdal_message(exc)}); the file is truncated or "
                "corrupt: download or export it again"
            ) from exc


USER_LAYOUTS = ("stack", "per_band_file")  # presets read from user files (not built-in global grids)
SOURCE_OPTION_SEP = "::"
SOURCE_OPTIONS = ("sensor", "bands")


def parse_source(text: str) -> tuple[str, dict[str, str]]:
    """Split ``PATH::sensor=NAME::bands=A,B`` into the path and its options.

    Raises:
        SourceError: for an option that is not ``key=value`` or an unknown key.
    """
    path, *opts = text.split(SOURCE_OPTION_SEP)
    out: dict[str, str] = {}
    for o in opts:
        key, eq, value = o.partition("=")
        if not eq or key.strip() not in SOURCE_OPTIONS or not value.strip():
            raise SourceError(
                f"source option {o!r} in {text!r} is not understood; write "
                f"'PATH{SOURCE_OPTION_SEP}sensor=NAME{SOURCE_OPTION_SEP}bands=B04,B03,B02' "
                f"(options: {', '.join(SOURCE_OPTIONS)})"
            )
        out[key.strip()] = value.strip()
    return path, out


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
    descriptions: tuple[str | None, ...] = ()
    shape: tuple[int, int] = (0, 0)
    """Declared (height, width) in pixels."""
    itemsize: int = 0
    """Bytes per pixel of the widest band."""


@lru_cache(maxsize=65536)
def raster_header(path: str) -> RasterHeader:
    """Open ``path`` once and keep its header (cached per path).

    Raises:
        RasterError: when the file cannot be read as a raster.
    """
    if is_url(path):
        _remote_env()
    try:
        with rasterio.open(path) as src:
            b = src.bounds
            return RasterHeader(
                int(src.count),
                src.crs,
                (b.left, b.bottom, b.right, b.top),
                dict(src.tags()),
                tuple(src.descriptions),
                (int(src.height), int(src.width)),
                max((np.dtype(d).itemsize for d in src.dtypes), default=0),
            )
    except rasterio.errors.RasterioIOError as exc:
        raise RasterError(
            f"cannot read {path!r} as a raster ({gdal_message(exc)}); is it a GeoTIFF?"
        ) from exc


def _band_count(path: str) -> int:
    return raster_header(path).count


def _mask_specs(sensor: Sensor) -> dict[str, dict]:
    return dict(sensor.extra.get("masks") or {})


def band_lookup(sensor: Sensor) -> dict[str, str]:
    """Lower-case band name or alias -> the preset's band or mask name (``band_aliases``, mask aliases)."""
    out: dict[str, str] = {}
    for name, spec in _mask_specs(sensor).items():
        for a in (name, *spec.get("aliases", [])):
            out[a.lower()] = name
    for b, aliases in (sensor.extra.get("band_aliases") or {}).items():
        for a in aliases:
            out[a.lower()] = b
    for b in sensor.band_names:
        out[b.lower()] = b
    return out


def split_file_bands(sensor: Sensor, names: list[str] | tuple[str, ...]) -> tuple[Sensor, tuple[str, ...]]:
    """A ``--bands`` list as (sensor with those data bands in that order, the file's band order).

    Names may be aliases (``red``, ``B4``) and may include the preset's mask bands (``SCL``).

    Raises:
        SensorError: for a name that is neither a band nor a mask of the preset.
    """
    lookup = band_lookup(sensor)
    full = get_sensor(sensor.name)
    canon = []
    for n in names:
        c = lookup.get(n.strip().lower()) or band_lookup(full).get(n.strip().lower())
        if c is None:
            raise SensorError(
                f"sensor {sensor.name!r} has no band {n!r}; its bands are {', '.join(full.band_names)}"
                + (f" and masks {', '.join(_mask_specs(full))}" if _mask_specs(full) else "")
            )
        canon.append(c)
    masks = _mask_specs(full)
    return full.with_bands([c for c in canon if c not in masks]), tuple(canon)


def _suffix_band(name: str, sensor: Sensor) -> tuple[str, int] | None:
    """(band or mask name, start of its suffix) when a file name carries a band suffix."""
    rxs = [sensor.band_suffix_regex] + [m.get("suffix_regex") for m in _mask_specs(sensor).values()]
    known = set(sensor.band_names) | set(_mask_specs(sensor))
    for rx in rxs:
        if rx and (m := re.search(rx, name)) and m.group(1) in known:
            return m.group(1), m.start()
    return None


def _description_order(path: str, sensor: Sensor) -> tuple[str, ...] | None:
    """Band order from the file's band descriptions, when every one names a band or mask."""
    desc = raster_header(path).descriptions
    if not desc or not all(desc):
        return None
    lookup = band_lookup(sensor)
    order = tuple(lookup.get(str(d).strip().lower(), "") for d in desc)
    if not all(order) or not set(order) & set(sensor.band_names) or len(set(order)) != len(order):
        return None
    return order


def _stack_order(path: str, sensor: Sensor, file_bands: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The band order of a stacked file: ``--bands``, band descriptions, else the preset's order."""
    n = _band_count(path)
    if file_bands is not None:
        return file_bands if n == len(file_bands) else None
    if (order := _description_order(path, sensor)) is not None:
        return order
    return sensor.band_names if n == len(sensor.bands) else None


def _fit_share(sensor: Sensor, paths: list[str]) -> float:
    """How well ``paths`` fit ``sensor``: share of band-suffix names, else 1 when the first file stacks.

    A stack fit scores a little less for one-file-per-band presets, so that a stacked file
    prefers a stack preset when several have its bands.
    """
    if sensor.layout not in USER_LAYOUTS:
        return 0.0  # other layouts (e.g. built-in global grids) are never user files
    by_name = sum(_suffix_band(Path(p).name, sensor) is not None for p in paths) / len(paths)
    if by_name >= 0.5:
        return by_name
    if _suffix_band(Path(paths[0]).name, sensor) is None and _stack_order(paths[0], sensor, None):
        return 1.0 if sensor.layout == "stack" else 0.9
    return by_name


def detect_sensor(paths: list[str]) -> Sensor:
    """Pick the sensor preset that fits the most files (band-file names, descriptions or band count).

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


def _stack_item(path: str, sensor: Sensor, order: tuple[str, ...]) -> RasterItem:
    masks = _mask_specs(sensor)
    present = [b for b in sensor.band_names if b in order]
    item = RasterItem(path, sensor if len(present) == len(sensor.bands) else sensor.with_bands(present))
    for i, b in enumerate(order):
        (item.mask_files if b in masks else item.band_files)[b] = (path, i + 1)
    return item


def group_items(
    paths: list[str], sensor: Sensor, file_bands: tuple[str, ...] | None = None
) -> list[RasterItem]:
    """Group files into raster items of ``sensor``.

    A file whose name ends in a band (or mask) suffix is one band of a group; any other file
    is a stack (band order: ``file_bands``, else its band descriptions, else the preset's).
    Single-band files of neither kind (an unknown QA band) are skipped with a log message.

    Raises:
        RasterError: a stacked file whose band count fits neither the preset nor ``file_bands``.
        InputNotFoundError: when no file fits the sensor.
    """
    if sensor.layout not in USER_LAYOUTS:
        raise InputNotFoundError(
            f"sensor {sensor.name!r} is a built-in {sensor.layout} layer, not read from --source files; "
            "choose another --sensor"
        )
    items: list[RasterItem] = []
    groups: dict[str, RasterItem] = {}
    masks = _mask_specs(sensor)
    skipped = []
    for p in paths:
        name = Path(p).name
        if (hit := _suffix_band(name, sensor)) is not None:
            band, start = hit
            if band not in masks and band not in sensor.band_names:
                skipped.append(p)
                continue
            key = str(Path(p).parent / name[:start])
            item = groups.setdefault(key, RasterItem(key, sensor))
            (item.mask_files if band in masks else item.band_files)[band] = (p, 1)
            continue
        order = _stack_order(p, sensor, file_bands)
        if order is not None:
            items.append(_stack_item(p, sensor, order))
            continue
        n = _band_count(p)
        if sensor.layout == "stack" or n > 1 or file_bands is not None:
            want = file_bands or sensor.band_names
            raise RasterError(
                f"{p!r} has {n} bands but sensor preset {sensor.name!r} expects "
                f"{len(want)} ({','.join(want)}); pass --bands with the file's "
                "band order (or PATH::bands=... for this source) or choose another --sensor"
            )
        skipped.append(p)
    if skipped:
        log.info(
            "skipped %d file(s) without a %s band suffix, e.g. %s", len(skipped), sensor.name, skipped[0]
        )
    items.extend(g for g in groups.values() if g.band_files)
    if not items:
        raise InputNotFoundError(
            f"no file fits sensor {sensor.name!r} (bands {','.join(sensor.band_names)}); check --sensor"
        )
    for it in items:
        it.datetime = item_datetime(it)
    return items


def items_for_source(
    patterns: list[str], sensor: str | None = None, bands: list[str] | None = None
) -> list[RasterItem]:
    """Raster items of one ``--source`` (patterns may carry ``::sensor=``/``::bands=`` options).

    Raises:
        EarthvecError: for missing files, unknown presets or bands, or files that do not fit.
    """
    by_opts: dict[tuple[str | None, str | None], list[str]] = {}
    for pat in patterns:
        path, opts = parse_source(pat)
        key = (opts.get("sensor", sensor), opts.get("bands", ",".join(bands) if bands else None))
        by_opts.setdefault(key, []).append(path)
    items: list[RasterItem] = []
    for (sname, bandtext), pats in by_opts.items():
        paths = resolve_sources(pats)
        preset = get_sensor(sname) if sname else detect_sensor(paths)
        file_bands = None
        if bandtext:
            preset, file_bands = split_file_bands(preset, bandtext.split(","))
        items.extend(group_items(paths, preset, file_bands))
    return items


def _parse_time(text: str, fmt: str | None) -> datetime | None:
    try:
        t = datetime.fromisoformat(text) if fmt in (None, "iso") else datetime.strptime(text, fmt)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=timezone.utc)


def _mtl_time(text: str) -> datetime | None:
    """Landsat MTL: DATE_ACQUIRED plus SCENE_CENTER_TIME when present."""
    m = re.search(r"DATE_ACQUIRED\s*=\s*(\d{4}-\d{2}-\d{2})", text)
    if not m:
        return None
    t = re.search(r'SCENE_CENTER_TIME\s*=\s*"?(\d{2}:\d{2}:\d{2})', text)
    return _parse_time(f"{m.group(1)}T{t.group(1)}" if t else m.group(1), "iso")


def _json_time(text: str) -> datetime | None:
    """BigEarthNet-style ``*metadata.json``: ``acquisition_date``/``acquisition_time``."""
    m = re.search(r'"acquisition_(?:date|time)"\s*:\s*"([^"]+)"', text)
    return _parse_time(m.group(1), "iso") if m else None


_SIDECARS = (("*_MTL.txt", _mtl_time), ("*metadata.json", _json_time))

# TIFF/GDAL metadata tags that carry an acquisition time (first found wins)
DATETIME_TAGS = (
    "ACQUISITION_DATETIME",
    "ACQUISITION_TIME",
    "ACQUISITION_DATE",
    "DATE_ACQUIRED",
    "SENSING_TIME",
    "PRODUCT_START_TIME",
    "datetime",
    "DATETIME",
    "system:time_start",
    "TIFFTAG_DATETIME",
)


def tag_datetime(tags: dict[str, str]) -> datetime | None:
    """Acquisition time from raster metadata tags (ISO text, TIFF ``YYYY:MM:DD HH:MM:SS``, epoch ms)."""
    for key in DATETIME_TAGS:
        text = tags.get(key)
        if not text:
            continue
        text = text.strip()
        if key == "system:time_start" or text.isdigit():
            try:
                return datetime.fromtimestamp(int(text) / 1000.0, tz=timezone.utc)
            except (ValueError, OverflowError, OSError):
                continue
        if re.fullmatch(r"\d{4}:\d{2}:\d{2}.*", text):
            text = text.replace(":", "-", 2)
        if t := _parse_time(text.replace(" ", "T", 1).replace("Z", "+00:00"), "iso"):
            return t
    return None


def item_datetime(item: RasterItem) -> datetime | None:
    """Acquisition time: file-name pattern, then a metadata sidecar, then the raster's tags.

    A sidecar whose name starts like the item's is preferred over others in the folder.
    """
    s = item.sensor
    if s.datetime_regex:
        m = re.search(s.datetime_regex, Path(item.key).name) or re.search(s.datetime_regex, item.key)
        if m and (t := _parse_time(m.group(1), s.datetime_format)):
            return t
    first = item.paths[0] if item.paths else item.key
    folder = Path(first).parent
    if not is_url(first) and folder.is_dir():
        stem = Path(item.key).name.rsplit(".", 1)[0]
        for pattern, parse in _SIDECARS:
            found = sorted(folder.glob(pattern), key=lambda f: (not f.name.startswith(stem), f.name))
            for side in found[:1]:
                if t := parse(side.read_text(errors="ignore")):
                    return t
    return tag_datetime(raster_header(first).tags)


def parse_datetime_window(text: str) -> tuple[datetime | None, datetime | None]:
    """``A/B`` (ISO dates or times, ``..`` for an open end) or one date -> inclusive (start, end).

    A date without a time covers its whole day.

    Raises:
        SourceError: when either end is not an ISO date or time.
    """
    parts = text.split("/")
    if len(parts) == 1:
        parts = [parts[0], parts[0]]
    if len(parts) != 2:
        raise SourceError(f"--datetime {text!r} is not a window; write START/END, e.g. 2017-06-01/2017-09-30")
    out: list[datetime | None] = []
    for k, p in enumerate(parts):
        p = p.strip()
        if p in ("", ".."):
            out.append(None)
            continue
        t = _parse_time(p.replace("Z", "+00:00"), "iso")
        if t is None:
            raise SourceError(
                f"--datetime {text!r}: {p!r} is not an ISO date or time; write e.g. 2017-06-01/2017-09-30"
            )
        if k == 1 and re.fullmatch(r"\d{4}-\d{2}-\d{2}", p):
            t = t + timedelta(days=1) - timedelta(microseconds=1)
        out.append(t)
    return out[0], out[1]


def in_window(when: datetime | None, window: tuple[datetime | None, datetime | None]) -> bool:
    """True when ``when`` lies in the inclusive window (an unknown time never does)."""
    if when is None:
        return False
    start, end = window
    return (start is None or when >= start) and (end is None or when <= end)
