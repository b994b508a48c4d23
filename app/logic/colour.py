"""Colours for cells: an RGB projection of the embeddings, class palettes and ramps."""

from __future__ import annotations

import numpy as np

from index.export import PALETTE  # Tableau-20 by sorted class: one palette for map and GeoTIFF

PCA_SAMPLE = 50_000
"""Rows used to fit the projection; the rest are only projected."""

VIRIDIS: tuple[tuple[int, int, int], ...] = (
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
)


def pca_rgb(vectors: np.ndarray, sample: int = PCA_SAMPLE, seed: int = 0) -> np.ndarray:
    """Project vectors on their first three principal components, as uint8 RGB.

    The components are fitted on at most ``sample`` rows; each is stretched between its
    2nd and 98th percentile so outliers do not wash the map out.

    Returns:
        (N, 3) uint8 colours; grey for fewer than two rows.
    """
    x = np.asarray(vectors, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.full((n, 3), 128, dtype=np.uint8)
    rng = np.random.default_rng(seed)
    fit = x if n <= sample else x[rng.choice(n, sample, replace=False)]
    mean = fit.mean(axis=0)
    _, _, vt = np.linalg.svd(fit - mean, full_matrices=False)
    comps = vt[:3]
    # fix the sign of each component so colours do not flip between runs
    signs = np.sign(comps[np.arange(len(comps)), np.argmax(np.abs(comps), axis=1)])
    comps = comps * signs[:, None]
    proj = (x - mean) @ comps.T
    if proj.shape[1] < 3:
        proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
    lo = np.percentile(proj, 2, axis=0)
    hi = np.percentile(proj, 98, axis=0)
    scaled = (proj - lo) / np.where(hi > lo, hi - lo, 1.0)
    return np.clip(scaled * 255.0, 0, 255).astype(np.uint8)


def class_colours(classes: list[str]) -> dict[str, tuple[int, int, int]]:
    """A fixed colour per class name (sorted order, Tableau-20, cycling)."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(sorted(set(classes)))}


def ramp(values: np.ndarray, vmin: float | None = None, vmax: float | None = None) -> np.ndarray:
    """Map values to a viridis-like ramp (low = purple, high = yellow), uint8 (N, 3).

    NaN values become grey.
    """
    v = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(v)
    lo = float(np.min(v[finite])) if vmin is None and finite.any() else (vmin or 0.0)
    hi = float(np.max(v[finite])) if vmax is None and finite.any() else (vmax or 1.0)
    t = np.clip((v - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    stops = np.asarray(VIRIDIS, dtype=np.float64)
    pos = np.where(finite, t, 0.0) * (len(stops) - 1)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, len(stops) - 1)
    frac = (pos - i0)[:, None]
    rgb = stops[i0] * (1 - frac) + stops[i1] * frac
    rgb[~finite] = 128
    return rgb.round().astype(np.uint8)
