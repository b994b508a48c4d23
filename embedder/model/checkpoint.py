"""Checkpoints of the multimodal embedder: weights + configuration + normalisation + version.

The version is a hash of the model configuration, the normalisation statistics and the
weight values, so two checkpoints with the same version embed identically. Files are
written atomically.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.contract import atomic_write_bytes
from embedder.datapath import data_dir, package_file
from embedder.errors import InputNotFoundError, ModelMismatchError
from embedder.model.config import ModelConfig, model_config_from, to_dict
from embedder.model.net import MultimodalNet
from embedder.vectors import config_hash

FORMAT = "earthvec-mm/2"
CHECKPOINT_NAME = "earthvec-mm.pt"
ENV_WEIGHTS = "EARTHVEC_MM_WEIGHTS"


def candidate_paths() -> list[Path]:
    """Where the default checkpoint is looked for, in order.

    ``$EARTHVEC_MM_WEIGHTS``, the copy shipped inside the package
    (``embedder/weights/earthvec-mm.pt``, package data, so an installed wheel has it), then
    ``models/`` in the data folder (:func:`embedder.datapath.data_dir`).
    """
    out = []
    if os.environ.get(ENV_WEIGHTS):
        out.append(Path(os.environ[ENV_WEIGHTS]))
    out.append(Path(str(package_file("embedder", "weights", CHECKPOINT_NAME))))
    out.append(data_dir(must_exist=False) / "models" / CHECKPOINT_NAME)
    return out


def default_checkpoint() -> Path:
    """The shipped checkpoint.

    Raises:
        InputNotFoundError: naming every place looked at and how to create the file.
    """
    paths = candidate_paths()
    for p in paths:
        if p.is_file():
            return p
    raise InputNotFoundError(
        f"no earthvec-mm checkpoint found (looked at {', '.join(map(str, paths))}); "
        f"run `earthvec train --out embedder/weights/{CHECKPOINT_NAME}` or set {ENV_WEIGHTS}"
    )


def weights_hash(
    cfg_dict: dict[str, Any], normalisation: dict[str, Any], state: dict[str, torch.Tensor]
) -> str:
    """Version hash of configuration, normalisation and weight values."""
    parts: list[Any] = [cfg_dict, normalisation]
    for k in sorted(state):
        parts.append(k)
        parts.append(np.ascontiguousarray(state[k].detach().cpu().numpy()).tobytes())
    return config_hash(*parts)


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        model_config: the network shape.
        normalisation: per-sensor, per-band ``[mean, std]``.
        state: the network's weights.
        version: hash of the above.
        train_config: the training configuration (provenance), may be empty.
        info: free-form provenance (sources, steps, timings).
    """

    model_config: ModelConfig
    normalisation: dict[str, dict[str, list[float]]]
    state: dict[str, torch.Tensor]
    version: str
    train_config: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    def build(self) -> MultimodalNet:
        """The network with these weights, in eval mode."""
        net = MultimodalNet(self.model_config)
        net.load_state_dict(self.state)
        return net.eval()


def make_checkpoint(
    net: MultimodalNet,
    normalisation: dict[str, dict[str, list[float]]],
    train_config: dict[str, Any] | None = None,
    info: dict[str, Any] | None = None,
) -> Checkpoint:
    """A checkpoint of ``net`` (weights copied to CPU float32)."""
    state = {
        k: v.detach().cpu().float().clone() if v.is_floating_point() else v.detach().cpu().clone()
        for k, v in net.state_dict().items()
    }
    version = weights_hash(to_dict(net.cfg), normalisation, state)
    return Checkpoint(net.cfg, normalisation, state, version, train_config or {}, info or {})


def save_checkpoint(ckpt: Checkpoint, path: str | Path) -> Path:
    """Write ``ckpt`` atomically to ``path`` and return the path."""
    buf = io.BytesIO()
    torch.save(
        {
            "format": FORMAT,
            "version": ckpt.version,
            "model_config": to_dict(ckpt.model_config),
            "normalisation": ckpt.normalisation,
            "train_config": ckpt.train_config,
            "info": ckpt.info,
            "state_dict": ckpt.state,
        },
        buf,
    )
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, buf.getvalue())
    return out


def load_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Read a checkpoint (the default one when ``path`` is None) and verify its version.

    Raises:
        InputNotFoundError: when the file does not exist.
        ModelMismatchError: when it is not an earthvec-mm checkpoint or its weights do not
            match its recorded version (corrupted or edited file).
    """
    p = Path(path) if path is not None else default_checkpoint()
    if not p.is_file():
        raise InputNotFoundError(f"checkpoint {str(p)!r} not found; run `earthvec train --out {p}`")
    try:
        raw = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a bad file
        msg = " ".join(str(exc).split())[:300]
        raise ModelMismatchError(
            f"{p} is not a readable earthvec-mm checkpoint ({msg}); it is truncated or another "
            "format: copy it again or retrain it with `earthvec train`"
        ) from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ModelMismatchError(f"{p} is not an {FORMAT} checkpoint; retrain with `earthvec train`")
    try:
        cfg = model_config_from(raw["model_config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelMismatchError(
            f"{p} has no usable model configuration ({exc}); retrain it with `earthvec train`"
        ) from exc
    _check_architecture(p, cfg, raw.get("state_dict") or {})
    version = weights_hash(to_dict(cfg), raw["normalisation"], raw["state_dict"])
    if version != raw["version"]:
        raise ModelMismatchError(
            f"{p}: weights hash {version} differs from the recorded version {raw['version']}; "
            "the file is corrupted or was edited, retrain it with `earthvec train`"
        )
    return Checkpoint(cfg, raw["normalisation"], raw["state_dict"], version, raw["train_config"], raw["info"])


def _check_architecture(path: Path, cfg: ModelConfig, state: dict[str, Any]) -> None:
    """Refuse weights whose names or shapes differ from the network ``cfg`` describes."""
    want = {k: tuple(v.shape) for k, v in MultimodalNet(cfg).state_dict().items()}
    got = {k: tuple(getattr(v, "shape", ())) for k, v in state.items()}
    if want == got:
        return
    diff = sorted(k for k in want.keys() & got.keys() if want[k] != got[k])
    if diff:
        what = f"{diff[0]} has shape {got[diff[0]]} but the configuration needs {want[diff[0]]}"
    else:
        extra, missing = sorted(got.keys() - want.keys()), sorted(want.keys() - got.keys())
        what = f"weights {extra[:2]} are unknown" if extra else f"weights {missing[:2]} are missing"
    raise ModelMismatchError(
        f"{path} holds weights of another architecture than its configuration ({what}); "
        "it is not an earthvec-mm checkpoint of this version: retrain it with `earthvec train`"
    )


def random_checkpoint(seed: int = 0, cfg: ModelConfig | None = None) -> Checkpoint:
    """The same architecture, randomly initialised with ``seed`` (an evaluation baseline)."""
    from embedder.model.prep import sensor_stats

    torch.manual_seed(seed)
    net = MultimodalNet(cfg or ModelConfig()).eval()
    return make_checkpoint(net, sensor_stats(), {}, {"random_init": True, "seed": seed})
