"""Timing and accuracy measurements shared by every peer."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from bench.peers import Peer


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean share of the exact top-``k`` ids found among the returned ``k``."""
    f, t = np.asarray(found)[:, :k], np.asarray(truth)[:, :k]
    return float(np.mean([len(np.intersect1d(a, b)) / k for a, b in zip(f, t, strict=True)]))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds taken by ``fn()`` and its result."""
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def qps_batched(search: Callable[[np.ndarray], Any], q: np.ndarray, repeats: int = 3) -> float:
    """Queries/s of one call with all queries (best of ``repeats``: others share the machine)."""
    best = min(timed(lambda: search(q))[0] for _ in range(repeats))
    return len(q) / best


def qps_single(search: Callable[[np.ndarray], Any], q: np.ndarray, repeats: int = 2) -> float:
    """Queries/s of one call per query (best of ``repeats`` passes)."""
    rows = [q[i : i + 1] for i in range(len(q))]

    def run() -> None:
        for r in rows:
            search(r)

    best = min(timed(run)[0] for _ in range(repeats))
    return len(q) / best


@dataclass
class Row:
    """One line of the results table."""

    engine: str
    config: str
    knob: str = ""
    knob_value: int | None = None
    recall: float | None = None
    qps_single: float | None = None
    qps_batch: float | None = None
    build_s: float | None = None
    bytes_per_vector: float | None = None
    reached_target: bool | None = None
    sweep: list[dict[str, float]] = field(default_factory=list)
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (rounded)."""
        d = asdict(self)
        for key in ("recall", "qps_single", "qps_batch", "build_s", "bytes_per_vector"):
            if d[key] is not None:
                d[key] = round(float(d[key]), 4 if key == "recall" else 1)
        return d


def run_peer(
    peer: Peer,
    config: str,
    x: np.ndarray,
    q: np.ndarray,
    truth: np.ndarray,
    *,
    k: int = 10,
    target: float = 0.95,
    log: Callable[[str], None] = print,
) -> Row:
    """Build ``peer``, sweep its knob up to ``target`` recall, time it there, free it."""
    log(f"  building {peer.name} ({config}) on {len(x):,} vectors ...")
    build_s, _ = timed(lambda: peer.build(x))
    row = Row(peer.name, config, peer.knob, build_s=build_s, note=peer.note)
    try:
        mem = peer.memory_bytes()
        row.bytes_per_vector = None if mem is None else mem / len(x)
        chosen = None
        for v in peer.sweep or (None,):
            if v is not None:
                peer.set_knob(v)
            qs = q if peer.batched else q[: peer.single_queries]
            tr = truth[: len(qs)]
            found = peer.search(qs, k)
            rec = recall_at_k(found, tr, k)
            entry: dict[str, float] = {"recall": round(rec, 4)}
            if v is not None:
                entry[peer.knob] = v
            if peer.batched:
                entry["qps_batch"] = round(qps_batched(lambda a: peer.search(a, k), q, 2), 1)
            row.sweep.append(entry)
            log(f"    {peer.knob or 'exact'}={v}: recall@{k} {rec:.4f} {entry.get('qps_batch', '')}")
            chosen = (v, rec)
            if rec >= target:
                break
        assert chosen is not None
        v, rec = chosen
        row.knob_value, row.recall, row.reached_target = v, rec, rec >= target
        if v is not None:
            peer.set_knob(v)
        if peer.batched:
            row.qps_batch = qps_batched(lambda a: peer.search(a, k), q)
        row.qps_single = qps_single(lambda a: peer.search(a, k), q[: peer.single_queries])
        log(
            f"    -> recall {rec:.4f}, single {row.qps_single:,.0f}/s, "
            f"batched {row.qps_batch or 0:,.0f}/s, build {build_s:.1f} s"
        )
    finally:
        peer.close()
    return row
