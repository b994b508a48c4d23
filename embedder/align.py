"""Plan chips and align them into rows: one row per place and observation.

A *part* is one item's chip for one cell. Parts of one modality and sensor that were
acquired within ``PASS_GAP_S`` of each other are one *observation* (adjacent or overlapping
scenes of one overpass): the chip is read from the scene covering more of it, and its empty
pixels are filled from the others (``Part.fill``), so scene seams leave no half-empty chips.
A cell belongs to an observation when one of its scenes holds data at the cell centre.

Rows: by default one per cell and observation of the primary modality (optical when present),
so several dates of one place become several rows; each other modality contributes its
observation closest in time. With ``composite="median"`` a cell gets one row whose chip per
modality is the per-pixel median of every clear observation (``Part.stack``); quality-masked
and nodata pixels are NaN and do not vote.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone

from tqdm.auto import tqdm

from embedder.chipplan import ChipSpec, choose_mode, item_geometry, plan_chips
from embedder.errors import RasterError, SourceError
from embedder.h3grid import cell_to_str
from embedder.rasterfile import RasterItem

MODALITY_ORDER = ("optical", "sar", "elevation", "climate")
PASS_GAP_S = 3600.0  # parts of one sensor acquired less than an hour apart are one overpass
COMPOSITES = ("median",)


@dataclass
class SourceSpec:
    """One ``--source`` with its sensor preset (auto-detected when None) and band order.

    ``items`` holds raster items resolved elsewhere (a STAC search) instead of patterns.
    """

    patterns: list[str]
    sensor: str | None = None
    bands: list[str] | None = None
    items: list[RasterItem] | None = None


@dataclass
class Part:
    """One item's chip for one cell, with what else feeds the same chip.

    Attributes:
        item: the raster item the chip is read from.
        spec: the chip (cell, centre, coverage).
        mode: ``chip`` or ``scene``.
        fill: scenes of the same observation covering less of the chip; they fill its empty pixels.
        stack: the other observations of a composite (each with its own ``fill``).
    """

    item: RasterItem
    spec: ChipSpec
    mode: str
    fill: list[Part] = field(default_factory=list)
    stack: list[Part] = field(default_factory=list)

    @property
    def modality(self) -> str:
        """The item's modality."""
        return self.item.sensor.modality

    @property
    def observations(self) -> list[Part]:
        """This observation and the other observations of a composite."""
        return [self, *self.stack]

    @property
    def items(self) -> list[RasterItem]:
        """Every item read for this part: observations and their fills."""
        return [q.item for o in self.observations for q in (o, *o.fill)]


@dataclass
class Row:
    """One output row: a cell and the parts (one per modality) that feed it."""

    cell: int
    lat: float
    lon: float
    datetime: datetime | None
    parts: dict[str, Part] = field(default_factory=dict)

    @property
    def sources(self) -> list[str]:
        """All files feeding the row."""
        return list(dict.fromkeys(p for part in self.parts.values() for it in part.items for p in it.paths))


def plan_parts(items: list[RasterItem], res: int, mode: str) -> list[Part]:
    """Every (item, chip) pair the items yield at resolution ``res``, seam chips included."""
    parts: list[Part] = []
    for item in tqdm(items, desc="planning chips", unit="item", leave=False, disable=len(items) < 50):
        geom = item_geometry(item)
        m = choose_mode(geom, item, mode)
        parts.extend(Part(item, spec, m) for spec in plan_chips(item, geom, res, m, straddle=True))
    return parts


def _time_gap(a: datetime | None, b: datetime | None) -> float:
    if a is None or b is None:
        return 0.0 if a is b else float("inf")
    return abs((a - b).total_seconds())


def _when(part: Part) -> tuple[bool, datetime]:
    """Sort key: known times in order, unknown last."""
    t = part.item.datetime
    return (t is None, t if t is not None else datetime.max.replace(tzinfo=timezone.utc))


def _signature(part: Part) -> tuple[str, tuple[str, ...]]:
    s = part.item.sensor
    return s.name, s.band_names


def _clusters(parts: list[Part]) -> list[list[Part]]:
    """Parts grouped by sensor and overpass (acquired within ``PASS_GAP_S``; unknown times together)."""
    by_sig: dict[tuple[str, tuple[str, ...]], list[Part]] = defaultdict(list)
    for p in parts:
        by_sig[_signature(p)].append(p)
    out: list[list[Part]] = []
    for group in by_sig.values():
        unknown = [p for p in group if p.item.datetime is None]
        if unknown:
            out.append(unknown)
        run: list[Part] = []
        for p in sorted((p for p in group if p.item.datetime is not None), key=_when):
            if run and _time_gap(run[-1].item.datetime, p.item.datetime) >= PASS_GAP_S:
                out.append(run)
                run = []
            run.append(p)
        if run:
            out.append(run)
    return out


def _observation(cell: int, cluster: list[Part]) -> Part | None:
    """The part read for one observation (most coverage), with the others as fill; None off-scene.

    Raises:
        RasterError: when two chip-sized files of one observation map to the same cell.
    """
    if not any(p.spec.centre_in for p in cluster):
        return None
    whole = [p for p in cluster if p.mode == "chip"]
    if len(whole) > 1:
        a, b = whole[0], whole[1]
        raise RasterError(
            f"{a.item.key!r} and {b.item.key!r} both map to H3 cell {cell_to_str(cell)} "
            f"at time {a.item.datetime}; pass a finer --res so each chip gets its own cell"
        )
    ranked = sorted(cluster, key=lambda p: (-p.spec.coverage, not p.spec.centre_in, p.item.key))
    return replace(ranked[0], fill=[p for p in ranked[1:] if p.spec.coverage > 0], stack=[])


def _composite(observations: list[Part]) -> Part:
    """One part whose chip is the median of the observations of its most observed sensor.

    The part read first is the observation in the middle of the time order (the row's time).
    """
    by_sig: dict[tuple[str, tuple[str, ...]], list[Part]] = defaultdict(list)
    for o in observations:
        by_sig[_signature(o)].append(o)
    best = max(by_sig.values(), key=len)
    best.sort(key=_when)
    mid = best[(len(best) - 1) // 2]
    return replace(mid, stack=[o for o in best if o is not mid])


def align_rows(parts: list[Part], composite: str | None = None) -> list[Row]:
    """Group parts into rows by cell and observation, pairing modalities by nearest time.

    Args:
        parts: from :func:`plan_parts`.
        composite: ``None`` (one row per observation of the primary modality) or ``"median"``
            (one row per cell: the per-pixel median of its clear observations).

    Raises:
        RasterError: when two chip-sized inputs of one observation map to the same cell.
        SourceError: for an unknown composite.
    """
    if composite is not None and composite not in COMPOSITES:
        raise SourceError(f"--composite {composite!r} is not known; use one of {', '.join(COMPOSITES)}")
    by_cell: dict[int, dict[str, list[Part]]] = defaultdict(lambda: defaultdict(list))
    for p in parts:
        by_cell[p.spec.cell][p.modality].append(p)
    rows: list[Row] = []
    for cell in sorted(by_cell):
        obs: dict[str, list[Part]] = {}
        for modality, mparts in by_cell[cell].items():
            found = [o for c in _clusters(mparts) if (o := _observation(cell, c)) is not None]
            if found:
                obs[modality] = found
        if not obs:
            continue
        order = sorted(obs, key=lambda m: MODALITY_ORDER.index(m) if m in MODALITY_ORDER else 99)
        primary = order[0]
        if composite:
            main = _composite(obs[primary])
            row = Row(cell, main.spec.lat, main.spec.lon, main.item.datetime, {primary: main})
            row.parts.update({m: _composite(obs[m]) for m in order[1:]})
            rows.append(row)
            continue
        for p in sorted(obs[primary], key=_when):
            when = p.item.datetime
            row = Row(cell, p.spec.lat, p.spec.lon, when, {primary: p})
            for other in order[1:]:
                row.parts[other] = min(obs[other], key=lambda q: _time_gap(q.item.datetime, when))
            rows.append(row)
    return rows
