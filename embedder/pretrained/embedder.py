"""A published pretrained network with user weights behind the Embedder protocol.

The vector of a chip is the network's pooled features (ResNet: global average of ``layer4``),
L2-normalised. The version hashes everything that changes the vectors: architecture, the
weights' tensors, the input spec (bands, normalisation, resize, crop, nodata fill) and the
numeric precision; the device and batch size do not enter it.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import torch

from embedder.batch import ChipBatch
from embedder.errors import WeightsError
from embedder.pretrained import prep
from embedder.pretrained import weights as wts
from embedder.pretrained.resnet import ARCHS, ResNetFeatures
from embedder.pretrained.specs import ModelSpec
from embedder.vectors import config_hash, l2_normalise

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def pick_device(device: str | None = None) -> torch.device:
    """``device`` if given, else CUDA when available, else CPU."""
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def timm_available() -> bool:
    """Whether timm can be imported (the ``models`` extra)."""
    if importlib.util.find_spec("timm") is None:
        return False
    try:
        import timm  # noqa: F401
    except Exception:  # timm installed but unusable (e.g. without a matching torchvision)
        return False
    return True


def build_network(arch: str, in_chans: int, impl: str = "auto") -> tuple[torch.nn.Module, int, str]:
    """The feature network of ``arch``: (module, feature length, implementation used).

    Args:
        arch: ``resnet18``/``resnet50``/... or ``timm:<name>``.
        in_chans: input bands.
        impl: ``auto`` (timm when importable, else earthvec's own ResNet), ``timm`` or ``earthvec``.

    Raises:
        WeightsError: timm is needed but cannot be imported.
    """
    name = arch.removeprefix("timm:")
    use_timm = arch.startswith("timm:") or impl == "timm" or (impl == "auto" and timm_available())
    if (arch.startswith("timm:") or impl == "timm") and not timm_available():
        raise WeightsError(
            f"--model {arch if arch.startswith('timm:') else name} with timm needs the timm package "
            "(pip install 'earthvec[models]' beside a torchvision that matches your torch)"
        )
    if use_timm:
        import timm

        net = timm.create_model(name, pretrained=False, in_chans=in_chans, num_classes=0)
        return net, int(net.num_features), f"timm {timm.__version__}"
    if name not in ARCHS:
        raise WeightsError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHS)} or timm:<name>")
    net = ResNetFeatures(name, in_chans)
    return net, net.num_features, "earthvec.pretrained.resnet"


class PretrainedEmbedder:
    """Embeds optical chips with a published architecture and weights the user names.

    Attributes:
        name: registry name (``ssl4eo-resnet50``, ``timm:<arch>`` ...).
        version: hash of architecture, weights, input spec and precision.
        dim: feature length.
    """

    def __init__(
        self,
        spec: ModelSpec,
        weights: str | Path | None = None,
        *,
        allow_download: bool = False,
        device: str | None = None,
        precision: str = "fp32",
        batch_size: int = 32,
        impl: str = "auto",
    ) -> None:
        """Resolve and load the weights (strict key check) and put the network on ``device``.

        Args:
            spec: the model's published facts.
            weights: a state-dict file, or a published name (see :func:`embedder.pretrained.weights.resolve`).
            allow_download: let a published name be downloaded into the local cache.
            device: ``cpu``/``cuda``/``cuda:1``; default CUDA when available.
            precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; part of the version).
            batch_size: chips per forward pass.
            impl: ``auto``, ``timm`` or ``earthvec`` (which ResNet definition; same outputs).

        Raises:
            WeightsError: weights missing, not downloadable without permission, or not fitting.
            ValueError: an unknown precision.
        """
        if precision not in PRECISIONS:
            raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        self.spec = spec
        self.name = spec.name
        self.precision = precision
        self.batch_size = max(1, int(batch_size))
        self.device = pick_device(device)
        file = wts.resolve(weights, spec, allow_download)
        self.net, self.dim, self.impl = build_network(spec.arch, len(spec.input.bands), impl)
        loaded = _load_into(self.net, file, spec.name)
        self.weights_sha256 = loaded.sha256
        self.weights_info = {
            "file": Path(loaded.path).name,
            "sha256": loaded.sha256,
            "prefix": loaded.prefix,
            "ignored_keys": loaded.ignored[:20],
            "n_ignored_keys": len(loaded.ignored),
        }
        self.net.eval().to(self.device)
        if self.device.type == "cpu":
            self.net = self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.version = config_hash(spec.arch, spec.input.to_dict(), loaded.sha256, precision, "pooled-l2")

    def config(self) -> dict[str, Any]:
        """Architecture, input spec, weights provenance and precision (Parquet metadata)."""
        return {
            "arch": self.spec.arch,
            "title": self.spec.title,
            "implementation": self.impl,
            "input": self.spec.input.to_dict(),
            "weights": self.weights_info,
            "precision": self.precision,
            "features": f"pooled {self.dim}-d, L2-normalised",
            "handles_missing_bands": False,
        }

    def normalisation(self) -> dict[str, Any]:
        """Per-band ``[mean, std]`` in the model's input units and the factor from physical values."""
        inp = self.spec.input
        mean, std = inp.per_band(inp.mean), inp.per_band(inp.std)
        return {
            "units_per_physical": inp.units_per_physical,
            "bands": {b: [m, s] for b, m, s in zip(inp.bands, mean, std, strict=True)},
            "resize": inp.resize,
            "crop": inp.crop,
        }

    @torch.inference_mode()
    def embed_unnormalised(self, batch: ChipBatch) -> np.ndarray:
        """Pooled (N, dim) features before L2 normalisation; zero rows for chips without data."""
        mb = prep.optical(batch, self.name, self.spec.input)
        n = len(batch)
        out = np.zeros((n, self.dim), dtype=np.float32)
        dtype = PRECISIONS[self.precision]
        for start in range(0, n, self.batch_size):
            rows = np.arange(start, min(n, start + self.batch_size))
            data = np.array(mb.data[rows], dtype=np.float32)
            has = prep.fill_nodata(data, mb.present[rows], self.name, mb.bands)
            if not has.any():
                continue
            x = prep.to_tensor(data[has], self.spec.input, self.device)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            out[rows[has]] = self._forward(x, dtype)
        return out

    def _forward(self, x: torch.Tensor, dtype: torch.dtype | None) -> np.ndarray:
        # fp32 means fp32: cuDNN's TF32 convolutions (on by default) are switched off meanwhile
        tf32 = torch.backends.cudnn.allow_tf32
        torch.backends.cudnn.allow_tf32 = tf32 and dtype is not None
        try:
            with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                z = self.net(x)
        finally:
            torch.backends.cudnn.allow_tf32 = tf32
        return z.float().cpu().numpy()

    def embed(self, batch: ChipBatch) -> np.ndarray:
        """Unit-length (N, dim) float32 vectors; chips without data get zero rows."""
        return l2_normalise(self.embed_unnormalised(batch))


def _load_into(net: torch.nn.Module, file: Path, model: str) -> wts.LoadedWeights:
    loaded = wts.load(file, wts.expected_keys(net), model)
    result = net.load_state_dict(loaded.state_dict, strict=False)
    left = [k for k in result.missing_keys if not k.endswith(wts.OPTIONAL_SUFFIX)]
    if left or result.unexpected_keys:  # weights.match checked this already; keep torch honest
        raise WeightsError(
            f"{file} does not fit {model}: missing {left}, unexpected {result.unexpected_keys}"
        )
    return loaded
