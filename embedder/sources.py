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

import logging
import re
from pathlib import Path

from embedder.dates import item_datetime
from embedder.errors import InputNotFoundError, RasterError, SensorError, SourceError
from embedder.paths import expand_paths
from embedder.rasterfile import RasterItem, is_url, raster_header
from embedder.sensors import Sensor, get_sensor, sensor_names

__all__ = [
    "RasterItem",
    "band_lookup",
    "detect_sensor",
    "group_items",
    "is_url",
    "items_for_source",
    "parse_source",
    "resolve_sources",
    "split_file_bands",
]

log = logging.getLogger(__name__)


USER_LAYOUTS = ("stack", "per_band_file")  # presets read from user files (not built-in global grids)
SOURCE_OPTION_SEP = "::"
SOURCE_OPTIONS = ("sensor", "bands")
RASTER_SUFFIXES = (".tif", ".tiff", ".vrt")  # files a folder source yields


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
    return expand_paths(patterns, RASTER_SUFFIXES, "source", any_file_in_globs=True)


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
