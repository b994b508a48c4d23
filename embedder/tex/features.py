"""Pixel-to-feature maps of the ``earthvec-tex`` embedder (numpy only, fork-safe).

Every function here is a fixed, vectorised map over a batch of chips ``(N, C, H, W)``; the
fitted numbers they use (pixel standardisation, spectral covariance and components) come in
as arguments. Missing pixels are NaN throughout and never counted as data.

* :func:`pooled_stats` - the *foveated* moments of each channel: the mean over the whole
  chip, the mean over its centre (the inner quarter of the width, the place the H3 cell
  stands for) and the standard deviation over the whole chip.
* :func:`texture` - a rotation-invariant multi-scale description of spatial structure: at
  each level of a 2x average-pooling pyramid, the log energy of the band-pass residual
  (how much detail the image has at that scale), the mean local orientation coherence of
  the structure tensor (lines and edges: roads, rivers, field borders) and the coherence of
  the whole chip (one dominant direction).
* :func:`impute_slots` - the conditional mean of absent spectral slots given present ones
  under a Gaussian pixel model, so any band subset yields every slot.
* :func:`class_fractions` - shares of each class of a categorical layer (whole and centre).
"""

from __future__ import annotations

import warnings

import numpy as np

CENTRE_FRACTION = 0.25
"""Width of the centre window as a share of the chip width."""
LEVELS = 4
"""Levels of the texture pyramid (64 px chips: 64, 32, 16 and 8 px)."""
TEXTURE_PER_LEVEL = 3
"""Texture numbers per channel and level: band energy, local and global coherence."""
LOCAL_WINDOW = 8
"""Side in pixels of the windows the local structure tensor is averaged over."""
_EPS_ENERGY = 1e-3
_EPS_TENSOR = 1e-6


def centre_window(size: int, fraction: float = CENTRE_FRACTION) -> slice:
    """The central ``fraction`` of ``size`` pixels (at least 2 pixels, or all of them)."""
    half = max(1, int(round(size * fraction / 2)))
    c = size // 2
    return slice(max(0, c - half), min(size, c + half))


def pooled_stats(x: np.ndarray) -> np.ndarray:
    """Whole-chip mean, centre mean and whole-chip std per channel, NaN-aware.

    Args:
        x: (N, C, H, W) float array, NaN where there is no data.

    Returns:
        (N, 3 * C): ``[mean_0..mean_C, centre_0..centre_C, std_0..std_C]``; NaN where a
        channel has no valid pixel (callers decide what that means).
    """
    n, c = x.shape[:2]
    sy, sx = centre_window(x.shape[2]), centre_window(x.shape[3])
    flat = x.reshape(n, c, -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(flat, axis=2)
        centre = np.nanmean(x[:, :, sy, sx].reshape(n, c, -1), axis=2)
        std = np.nanstd(flat, axis=2)
    centre = np.where(np.isfinite(centre), centre, mean)  # a centre without data falls back to the chip
    return np.concatenate([mean, centre, std], axis=1).astype(np.float32)


def _pool2(x: np.ndarray) -> np.ndarray:
    n, c, h, w = x.shape
    h2, w2 = h // 2, w // 2
    return x[:, :, : 2 * h2, : 2 * w2].reshape(n, c, h2, 2, w2, 2).mean(axis=(3, 5))


def _block_mean(x: np.ndarray, s: int) -> np.ndarray:
    n, c, h, w = x.shape
    hb, wb = h // s, w // s
    y0, x0 = (h - hb * s) // 2, (w - wb * s) // 2  # centred, so a rotated chip has the same blocks
    return x[:, :, y0 : y0 + hb * s, x0 : x0 + wb * s].reshape(n, c, hb, s, wb, s).mean(axis=(3, 5))


def _coherence(jxx: np.ndarray, jyy: np.ndarray, jxy: np.ndarray) -> np.ndarray:
    return np.sqrt((jxx - jyy) ** 2 + 4.0 * jxy**2) / (jxx + jyy + _EPS_TENSOR)


def texture(x: np.ndarray, levels: int = LEVELS) -> np.ndarray:
    """Multi-scale, rotation-invariant texture numbers of every channel.

    Args:
        x: (N, C, H, W) standardised values; NaN is read as the population mean (0), so
            missing pixels lower the detail energy instead of inventing edges.
        levels: pyramid levels; a level needs at least 4 pixels a side (smaller chips give
            the coarsest usable level again, so the length never depends on chip size).

    Returns:
        (N, C * levels * 3) float32, ordered level-major: for each level, band energy of
        every channel, then local coherence, then whole-chip coherence.
    """
    cur = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0)
    out: list[np.ndarray] = []
    last: list[np.ndarray] = []
    for _ in range(levels):
        if min(cur.shape[2:]) < 4:
            out.extend(last)
            continue
        low = _pool2(cur)
        up = np.repeat(np.repeat(low, 2, axis=2), 2, axis=3)
        h, w = up.shape[2:]
        band = cur[:, :, :h, :w] - up
        energy = np.log(np.mean(band * band, axis=(2, 3)) + _EPS_ENERGY)
        gx = 0.5 * (cur[:, :, 1:-1, 2:] - cur[:, :, 1:-1, :-2])
        gy = 0.5 * (cur[:, :, 2:, 1:-1] - cur[:, :, :-2, 1:-1])
        jxx, jyy, jxy = gx * gx, gy * gy, gx * gy
        win = max(1, min(LOCAL_WINDOW, min(gx.shape[2:]) // 2))
        local = _coherence(_block_mean(jxx, win), _block_mean(jyy, win), _block_mean(jxy, win))
        glob = _coherence(jxx.mean(axis=(2, 3)), jyy.mean(axis=(2, 3)), jxy.mean(axis=(2, 3)))
        last = [energy, local.mean(axis=(2, 3)), glob]
        out.extend(last)
        cur = low
    return np.concatenate(out, axis=1).astype(np.float32)


def texture_dim(channels: int, levels: int = LEVELS) -> int:
    """Length of :func:`texture` for ``channels`` channels."""
    return channels * levels * TEXTURE_PER_LEVEL


def impute_slots(z: np.ndarray, present: np.ndarray, cov: np.ndarray, ridge: float = 1e-3) -> np.ndarray:
    """Fill absent slots with their conditional mean given the present ones, per pixel.

    Under a zero-mean Gaussian model of standardised pixels with covariance ``cov``, the
    best linear prediction of the absent slots ``a`` from the present ones ``p`` is
    ``cov[a, p] @ inv(cov[p, p]) @ z_p``. Pixels with no data in a present slot stay NaN.

    Args:
        z: (N, S, H, W) standardised slots; absent slots may hold anything.
        present: (S,) bool, which slots the data has.
        cov: (S, S) covariance of standardised pixels.
        ridge: added to the diagonal of ``cov[p, p]`` (as a share of its mean diagonal).
    """
    a = np.flatnonzero(~present)
    p = np.flatnonzero(present)
    if len(a) == 0 or len(p) == 0:
        return z
    cpp = cov[np.ix_(p, p)]
    cpp = cpp + ridge * np.trace(cpp) / len(p) * np.eye(len(p))
    gain = np.linalg.solve(cpp, cov[np.ix_(p, a)]).T  # (|a|, |p|)
    out = z.copy()
    out[:, a] = np.einsum("ap,nphw->nahw", gain.astype(np.float32), z[:, p])
    return out


def class_fractions(codes: np.ndarray, classes: list[int]) -> np.ndarray:
    """Share of each class among valid pixels, over the whole chip and over its centre.

    Args:
        codes: (N, 1, H, W) class codes, NaN where there is no data.
        classes: the class codes, in output order.

    Returns:
        (N, 2 * len(classes)) float32: whole-chip shares, then centre shares (zeros for a
        chip without valid pixels).
    """
    n = len(codes)
    sy, sx = centre_window(codes.shape[2]), centre_window(codes.shape[3])
    parts = []
    for view in (codes.reshape(n, -1), codes[:, :, sy, sx].reshape(n, -1)):
        valid = np.isfinite(view)
        count = np.maximum(valid.sum(axis=1), 1)
        parts.append(np.stack([(view == c).sum(axis=1) / count for c in classes], axis=1))
    return np.concatenate(parts, axis=1).astype(np.float32)
