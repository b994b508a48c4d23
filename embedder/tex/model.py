"""The ``earthvec-tex`` embedder: fitted parts, balanced shares, one unit vector per chip.

The vector is the concatenation of its parts (see :mod:`embedder.tex.parts`), each scaled
so that its mean squared norm over the unlabelled fitting chips equals its *share* squared;
cosine similarity then weighs each part by its share, whatever its length. The optical
signature is PCA-whitened with shrinkage (class information in reflectance lies in
low-variance directions), the other parts are standardised per number.

A chip without optical data gets its optical signature and texture *predicted* from the
modalities it has (ridge regressions fitted on co-registered chips: Sentinel-1 with
Sentinel-2, elevation and climate with Blue Marble colour), so a Sentinel-1-only chip lands
near its Sentinel-2 twin; parts of absent non-optical modalities are zero.

Everything fitted (pixel statistics, spectral covariance and components, scalings,
whitening, predictors) is stored in one ``.npz`` file; the version is a hash of the
configuration and every array.
"""

from __future__ import annotations

import copy
import io
import json
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from embedder.batch import ChipBatch
from embedder.contract import atomic_write_bytes
from embedder.errors import InputNotFoundError, SchemaError
from embedder.tex.parts import SIGNATURE, TEXTURE, RawParts, part_dims, part_names, raw_parts
from embedder.vectors import config_hash, l2_normalise

NAME = "earthvec-tex"
FILE_NAME = "earthvec-tex.npz"
FORMAT = "earthvec-tex/1"


@dataclass
class TexModel:
    """A fitted ``earthvec-tex`` model.

    Attributes:
        config: JSON-able configuration (transforms, shares, pyramid, fitting provenance).
        arrays: fitted numbers by name.
    """

    config: dict[str, Any]
    arrays: dict[str, np.ndarray]

    @property
    def version(self) -> str:
        """Hash of the configuration and every fitted array (name, dtype, shape, bytes)."""
        parts: list[Any] = [FORMAT, {k: v for k, v in self.config.items() if k != "info"}]
        for k in sorted(self.arrays):
            a = np.ascontiguousarray(self.arrays[k])
            parts += [k, str(a.dtype), list(a.shape), a.tobytes()]
        return config_hash(*parts)

    @property
    def dim(self) -> int:
        """Vector length: every part, padded to a multiple of 8 (friendly to PQ codes)."""
        raw = sum(part_dims(self.config).values())
        return -(-raw // 8) * 8

    def to_bytes(self) -> bytes:
        """The model as ``.npz`` bytes (configuration as a JSON string array)."""
        buf = io.BytesIO()
        config = np.array(json.dumps(self.config, sort_keys=True))
        payload: dict[str, Any] = {"__config__": config, **self.arrays}
        np.savez(buf, **payload)
        return buf.getvalue()

    def save(self, path: str | Path) -> Path:
        """Write the model atomically to ``path``."""
        out = Path(path)
        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(out, self.to_bytes())
        return out

    @classmethod
    def from_bytes(cls, data: bytes) -> TexModel:
        """Read a model written by :meth:`to_bytes`."""
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            config = json.loads(str(z["__config__"]))
            arrays = {k: z[k] for k in z.files if k != "__config__"}
        return cls(config, arrays)


def shipped_model_bytes() -> bytes:
    """The fitted model shipped inside the package.

    Raises:
        InputNotFoundError: when the package lacks it (run ``earthvec train --model earthvec-tex``).
    """
    res = resources.files("embedder.tex").joinpath(FILE_NAME)
    if not res.is_file():
        raise InputNotFoundError(
            f"the fitted {NAME} model ({FILE_NAME}) is missing from the embedder.tex package; "
            f"run `earthvec train --model {NAME}` to fit it"
        )
    return res.read_bytes()


@lru_cache(maxsize=1)
def _shipped_model() -> TexModel:
    """The shipped model, read once; its arrays are read-only, so every copy may share them."""
    model = TexModel.from_bytes(shipped_model_bytes())
    for a in model.arrays.values():
        a.setflags(write=False)
    return model


def load_model(path: str | Path | None = None) -> TexModel:
    """A fitted model from ``path``, or the shipped one (read once, its arrays shared read-only).

    Raises:
        InputNotFoundError: when ``path`` does not exist.
        SchemaError: when ``path`` is not a fitted model.
    """
    if path is None:
        shipped = _shipped_model()
        return TexModel(copy.deepcopy(shipped.config), dict(shipped.arrays))
    p = Path(path)
    if not p.is_file():
        raise InputNotFoundError(f"earthvec-tex model {str(p)!r} not found; fit one with `earthvec train`")
    try:
        return TexModel.from_bytes(p.read_bytes())
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise SchemaError(
            f"{p} is not a fitted {NAME} model (.npz written by `earthvec train`); for an earthvec-mm "
            "checkpoint pass --model earthvec-mm"
        ) from exc


def predictor_key(modalities: list[str]) -> str:
    """Name of the predictor from a set of non-optical modalities (sorted, ``+``-joined)."""
    return "+".join(sorted(modalities))


def standardised(name: str, v: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """A non-signature raw part standardised with its fitted mean and deviation."""
    return (v - arrays[f"{name}_mu"]) / arrays[f"{name}_sd"]


def whitened_signature(v: np.ndarray, arrays: dict[str, np.ndarray]) -> np.ndarray:
    """Raw signatures mapped through the fitted whitening."""
    return (v - arrays["sig_mean"]) @ arrays["sig_proj"]


def predictor_input(
    raw: RawParts, rows: np.ndarray, mods: list[str], arrays: dict[str, np.ndarray]
) -> np.ndarray:
    """Standardised parts of ``mods`` for ``rows``, concatenated in the given order."""
    return np.hstack([standardised(m, raw.values[m][rows], arrays) for m in mods])


def predict_optical(
    raw: RawParts, rows: np.ndarray, mods: list[str], arrays: dict[str, np.ndarray]
) -> np.ndarray | None:
    """Predicted ``[raw signature, standardised texture]`` for chips without optical data.

    Uses the predictor fitted for exactly ``mods`` when there is one, else the mean of the
    single-modality predictors that exist; None when no predictor applies.
    """
    key = predictor_key(mods)
    if f"pred:{key}:W" in arrays:
        x = predictor_input(raw, rows, sorted(mods), arrays)
        return x @ arrays[f"pred:{key}:W"] + arrays[f"pred:{key}:b"]
    singles = [m for m in mods if f"pred:{m}:W" in arrays]
    if not singles:
        return None
    preds = [
        predictor_input(raw, rows, [m], arrays) @ arrays[f"pred:{m}:W"] + arrays[f"pred:{m}:b"]
        for m in singles
    ]
    return np.mean(preds, axis=0)


def assemble(raw: RawParts, model: TexModel) -> np.ndarray:
    """Unit vectors from raw parts: scale, whiten, predict the missing optical, balance, join."""
    cfg, arrays = model.config, model.arrays
    n = len(next(iter(raw.values.values())))
    names = part_names(cfg)
    scaled: dict[str, np.ndarray] = {}
    for p in names:
        v = raw.values[p].astype(np.float64)
        z = whitened_signature(v, arrays) if p == SIGNATURE else standardised(p, v, arrays)
        scaled[p] = np.where(raw.present[p][:, None], z, 0.0)
    others = [m for m in names if m not in (SIGNATURE, TEXTURE)]
    missing = np.flatnonzero(~raw.present[SIGNATURE])
    have = np.stack([raw.present[m][missing] for m in others], axis=1)
    patterns, group = np.unique(have, axis=0, return_inverse=True)  # chips by the modalities they have
    d_sig = scaled[SIGNATURE].shape[1]
    for j, pattern in enumerate(patterns):
        mods = [m for m, h in zip(others, pattern, strict=True) if h]
        if not mods:
            continue
        rows = missing[group.ravel() == j]
        pred = predict_optical(raw, rows, mods, arrays)
        if pred is None:
            continue
        scaled[SIGNATURE][rows] = whitened_signature(pred[:, :d_sig], arrays)
        if cfg.get("predict_texture", True):
            scaled[TEXTURE][rows] = pred[:, d_sig:]
    shares = cfg["shares"]
    blocks = [
        scaled[p] * (float(shares[p]) / float(arrays[f"{p}_rms"])) * raw.weight[p][:, None] for p in names
    ]
    out = np.zeros((n, model.dim), dtype=np.float32)
    joined = np.hstack(blocks)
    out[:, : joined.shape[1]] = joined
    return l2_normalise(out)


class TexEmbedder:
    """Embeds chips of any modality and band subset with a fitted :class:`TexModel`.

    Attributes:
        name: registry name.
        version: the fitted model's hash.
        dim: vector length.
    """

    fork_safe = True  # numpy only: global builds may fork worker processes around it

    def __init__(self, model: TexModel | str | Path | None = None, name: str = NAME, **_: Any) -> None:
        self.model = model if isinstance(model, TexModel) else load_model(model)
        self.name = name
        self.version = self.model.version
        self.dim = self.model.dim

    def config(self) -> dict[str, Any]:
        """The model configuration (shares, transforms, pyramid, fitting provenance)."""
        return dict(self.model.config)

    def normalisation(self) -> dict[str, Any]:
        """The fitted pixel statistics (log-reflectance slots and other modalities)."""
        a = self.model.arrays
        out = {"optical_log_mu": a["opt_mu"].tolist(), "optical_log_sd": a["opt_sd"].tolist()}
        for k in a:
            if k.endswith("_px_mu") or k.endswith("_px_sd"):
                out[k] = a[k].tolist()
        return out

    def parts(self, batch: ChipBatch) -> RawParts:
        """The raw parts of ``batch`` (for fitting and inspection)."""
        return raw_parts(batch, self.model.arrays, self.model.config)

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Unit vectors (N, dim); chips with no data at all get zero rows."""
        if len(batch) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return assemble(self.parts(batch), self.model)
