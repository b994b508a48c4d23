"""Acquisition times of raster items and ``--datetime`` windows.

An item's time comes from its file name (the sensor's ``datetime_regex``), else a metadata
sidecar beside it (Landsat ``*_MTL.txt``, BigEarthNet ``*metadata.json``), else the raster's
own tags (GDAL/TIFF metadata, Earth Engine ``system:time_start``). Times are UTC-aware.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

from embedder.errors import SourceError
from embedder.rasterfile import RasterItem, is_url, raster_header


def parse_time(text: str, fmt: str | None) -> datetime | None:
    """``text`` as a UTC-aware time (``fmt`` ``None``/``"iso"`` for ISO 8601), or None."""
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
    return parse_time(f"{m.group(1)}T{t.group(1)}" if t else m.group(1), "iso")


def _json_time(text: str) -> datetime | None:
    """BigEarthNet-style ``*metadata.json``: ``acquisition_date``/``acquisition_time``."""
    m = re.search(r'"acquisition_(?:date|time)"\s*:\s*"([^"]+)"', text)
    return parse_time(m.group(1), "iso") if m else None


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
        if t := parse_time(text.replace(" ", "T", 1).replace("Z", "+00:00"), "iso"):
            return t
    return None


def item_datetime(item: RasterItem) -> datetime | None:
    """Acquisition time: file-name pattern, then a metadata sidecar, then the raster's tags.

    A sidecar whose name starts like the item's is preferred over others in the folder.
    """
    s = item.sensor
    if s.datetime_regex:
        m = re.search(s.datetime_regex, Path(item.key).name) or re.search(s.datetime_regex, item.key)
        if m and (t := parse_time(m.group(1), s.datetime_format)):
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
        t = parse_time(p.replace("Z", "+00:00"), "iso")
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
