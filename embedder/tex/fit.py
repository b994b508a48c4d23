"""Fitting ``earthvec-tex`` on unlabelled real chips (numpy, deterministic, seconds on 2 cores).

What is learned, all without labels, each source (EuroSAT outside the region hold-out,
BigEarthNet S1/S2 crops, Landsat-8 crops, global Blue Marble/ETOPO/Koppen chips) weighing
equally whatever its chip count:

1. per-slot mean and deviation of log reflectance, and of every other modality's values;
2. the covariance of standardised spectral slots (pairwise over the sources that have both
   slots), used to impute absent bands and to find the leading spectral components the
   texture part looks at;
3. the standardisation of every part and the shrunk PCA whitening of the optical signature;
4. ridge regressions from each set of non-optical modalities seen together with optical
   data to the optical signature and texture (the cross-modal prediction);
5. the root-mean-square norm of every scaled part, so that the configured shares hold.

The same inputs give the same bytes, hence the same version: ``earthvec train --model
earthvec-tex --check`` re-fits and compares with the shipped file.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import numpy as np

from embedder import datapath
from embedder.batch import ChipBatch
from embedder.model import data as sources
from embedder.model.probes import region_holdout
from embedder.sensors import get_sensor
from embedder.tex.model import TexModel, predictor_input, predictor_key, standardised
from embedder.tex.parts import (
    N_SLOTS,
    OPTICAL,
    SIGNATURE,
    TEXTURE,
    RawParts,
    modality_specs,
    optical_slot_index,
    part_names,
    raw_parts,
    slot_values,
    transform_values,
)

PIXELS_PER_SOURCE = 200_000


def default_config() -> dict[str, Any]:
    """The shipped configuration; the Koppen class codes come from the sensor table."""
    koppen = get_sensor("koppen")
    return {
        "optical_offset": 0.005,
        "components": 4,
        "levels": 4,
        "texture_reference_px": 64,
        "signature_eps": 0.2,
        "ridge": 1.0,
        "predict_texture": True,
        "modalities": {
            "sar": {"slots": ["VV", "VH"], "transform": "linear"},
            "elevation": {"slots": ["elevation"], "transform": "asinh", "scale": 100.0},
            "climate": {
                "slots": [koppen.bands[0].name],
                "categorical": True,
                "classes": sorted(int(c) for c in koppen.extra["classes"]),
            },
        },
        "shares": {"signature": 1.0, "texture": 1.0, "sar": 1.0, "elevation": 1.0, "climate": 1.0},
        "fit": {"bigearthnet_crops": 512, "landsat_crops": 512, "global_chips": 2048, "seed": 0},
    }


def fit_sources(root: str | Path | None, fit: dict[str, Any]) -> dict[str, ChipBatch]:
    """The unlabelled fitting chips by source; EuroSAT chips of the region hold-out are left out."""
    from embedder.globe.layers import training_chip_batch

    root = datapath.data_dir(root)
    rng = np.random.default_rng(int(fit["seed"]))
    es = sources.load_eurosat(root)
    keep = np.flatnonzero(~region_holdout(es.lat, es.lon))
    return {
        "eurosat": es.batch.take(keep),
        "bigearthnet": sources.random_crops(
            sources.load_bigearthnet(root), int(fit["bigearthnet_crops"]), rng
        ),
        "landsat8": sources.random_crops(sources.load_landsat(root), int(fit["landsat_crops"]), rng),
        "global": training_chip_batch(root, n=int(fit["global_chips"]), seed=int(fit["seed"])),
    }


def _sample_pixels(x: np.ndarray, n: int) -> np.ndarray:
    """Up to ``n`` evenly strided pixels (P, C) of (N, C, H, W) with every channel finite."""
    px = np.moveaxis(x, 1, -1).reshape(-1, x.shape[1])
    px = px[np.isfinite(px).all(axis=1)]
    step = max(1, len(px) // n)
    return px[::step][:n].astype(np.float64)


def _optical_logs(batch: ChipBatch, offset: float) -> tuple[np.ndarray, np.ndarray]:
    """Log reflectance of the slots a batch has: ((N, 13, H, W) NaN where absent, present (13,))."""
    mb = batch.modalities[OPTICAL]
    n, _, h, w = mb.data.shape
    out = np.full((n, N_SLOTS, h, w), np.nan, dtype=np.float32)
    have = np.zeros(N_SLOTS, dtype=bool)
    for c, j in enumerate(optical_slot_index(mb)):
        if j is not None and not have[j]:
            out[:, j] = np.log(np.maximum(mb.data[:, c], 0.0) + offset)
            have[j] = True
    return out, have


def fit_pixel_model(batches: dict[str, ChipBatch], cfg: dict[str, Any]) -> dict[str, np.ndarray]:
    """Slot statistics, spectral covariance and components, other modalities' pixel statistics."""
    logs = {k: _optical_logs(b, cfg["optical_offset"]) for k, b in batches.items() if OPTICAL in b.modalities}
    mu, sd = np.zeros(N_SLOTS), np.ones(N_SLOTS)
    for j in range(N_SLOTS):
        per = [
            _sample_pixels(x[:, j : j + 1], PIXELS_PER_SOURCE)[:, 0] for x, have in logs.values() if have[j]
        ]
        mu[j] = np.mean([p.mean() for p in per])
        sd[j] = np.sqrt(np.mean([p.var() + (p.mean() - mu[j]) ** 2 for p in per]))
    num, den = np.zeros((N_SLOTS, N_SLOTS)), np.zeros((N_SLOTS, N_SLOTS))
    for x, have in logs.values():
        idx = np.flatnonzero(have)
        z = (_sample_pixels(x[:, idx], PIXELS_PER_SOURCE) - mu[idx]) / sd[idx]
        num[np.ix_(idx, idx)] += z.T @ z / len(z)
        den[np.ix_(idx, idx)] += 1.0
    cov = np.where(den > 0, num / np.maximum(den, 1), 0.0)
    vals, vecs = np.linalg.eigh((cov + cov.T) / 2)
    vals = np.maximum(vals, 1e-3 * vals.max())  # the pairwise estimate made positive definite
    cov = (vecs * vals) @ vecs.T
    order = np.argsort(vals)[::-1][: int(cfg["components"])]
    pcs = vecs[:, order] / np.sqrt(vals[order])
    pcs *= np.sign(pcs[np.argmax(np.abs(pcs), axis=0), np.arange(pcs.shape[1])])  # fixed signs
    arrays = {"opt_mu": mu, "opt_sd": sd, "opt_cov": cov, "opt_pcs": pcs}
    for name, spec in modality_specs(cfg).items():
        if spec.get("categorical"):
            continue
        per = [
            _sample_pixels(transform_values(slot_values(b.modalities[name], spec), spec), PIXELS_PER_SOURCE)
            for b in batches.values()
            if name in b.modalities
        ]
        allpx = np.vstack(per)
        arrays[f"{name}_px_mu"] = allpx.mean(axis=0)
        arrays[f"{name}_px_sd"] = allpx.std(axis=0) + 1e-6
    return {k: v.astype(np.float32) for k, v in arrays.items()}


def _weighted(rows: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of several sources stacked, with weights giving every source the same total."""
    x = np.vstack(rows)
    w = np.concatenate([np.full(len(r), 1.0 / (len(r) * len(rows))) for r in rows])
    return x.astype(np.float64), w


def _weighted_moments(x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = w @ x
    return mean, np.sqrt(w @ (x - mean) ** 2) + 1e-6


def fit_whitening(x: np.ndarray, w: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Weighted PCA whitening with shrinkage ``eps`` (share of the largest deviation)."""
    mean = w @ x
    c = (x - mean).T @ ((x - mean) * w[:, None])
    vals, vecs = np.linalg.eigh((c + c.T) / 2)
    order = np.argsort(vals)[::-1]
    s = np.sqrt(np.maximum(vals[order], 0.0))
    vecs = vecs[:, order]
    vecs *= np.sign(vecs[np.argmax(np.abs(vecs), axis=0), np.arange(vecs.shape[1])])
    return mean, vecs / (s + eps * s.max())[None, :]


def _present_rows(raw: dict[str, RawParts], part: str) -> list[np.ndarray]:
    return [r.values[part][r.present[part]] for r in raw.values() if r.present[part].any()]


def fit_parts(raw: dict[str, RawParts], cfg: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Standardisation, whitening and cross-modal predictors (added to ``arrays``)."""
    for p in part_names(cfg):
        x, w = _weighted(_present_rows(raw, p))
        if p == SIGNATURE:
            arrays["sig_mean"], arrays["sig_proj"] = fit_whitening(x, w, float(cfg["signature_eps"]))
        else:
            arrays[f"{p}_mu"], arrays[f"{p}_sd"] = _weighted_moments(x, w)
    others = [m for m in part_names(cfg) if m not in (SIGNATURE, TEXTURE)]
    pairs: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    for r in raw.values():
        have = [m for m in others if r.present[m].any()]
        rows = np.flatnonzero(r.present[SIGNATURE] & np.all([r.present[m] for m in have], axis=0))
        if not have or len(rows) == 0:
            continue
        target = np.hstack(
            [r.values[SIGNATURE][rows], standardised(TEXTURE, r.values[TEXTURE][rows], arrays)]
        )
        for k in range(1, len(have) + 1):
            for mods in itertools.combinations(sorted(have), k):
                xs, ys = pairs.setdefault(predictor_key(list(mods)), ([], []))
                xs.append(predictor_input(r, rows, list(mods), arrays))
                ys.append(target)
    for key, (xs, ys) in sorted(pairs.items()):
        x, y = np.vstack(xs), np.vstack(ys)
        xm, ym = x.mean(axis=0), y.mean(axis=0)
        gram = (x - xm).T @ (x - xm) + float(cfg["ridge"]) * len(x) * np.eye(x.shape[1]) * 1e-2
        wgt = np.linalg.solve(gram, (x - xm).T @ (y - ym))
        arrays[f"pred:{key}:W"], arrays[f"pred:{key}:b"] = wgt, ym - xm @ wgt


def fit_rms(raw: dict[str, RawParts], cfg: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Root-mean-square norm of every scaled part over the chips that have it."""
    for p in part_names(cfg):
        x, w = _weighted(_present_rows(raw, p))
        z = (x - arrays["sig_mean"]) @ arrays["sig_proj"] if p == SIGNATURE else standardised(p, x, arrays)
        arrays[f"{p}_rms"] = np.array(np.sqrt(w @ (z * z).sum(axis=1)))


def fit_model(
    root: str | Path | None = None,
    config: dict[str, Any] | None = None,
    batches: dict[str, ChipBatch] | None = None,
) -> TexModel:
    """Fit every number of the model on the unlabelled chips of ``root`` (or ``batches``)."""
    cfg = config or default_config()
    t0 = time.perf_counter()
    batches = batches if batches is not None else fit_sources(root, cfg["fit"])
    arrays: dict[str, np.ndarray] = dict(fit_pixel_model(batches, cfg))
    raw = {k: raw_parts(b, arrays, cfg) for k, b in batches.items()}
    fit_parts(raw, cfg, arrays)
    fit_rms(raw, cfg, arrays)
    arrays = {k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()}
    info = {
        "sources": {k: len(b) for k, b in batches.items()},
        "fit_seconds": round(time.perf_counter() - t0, 1),
    }
    return TexModel({**cfg, "info": info}, arrays)
