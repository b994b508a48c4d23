"""What each pretrained model needs: bands, normalisation, input size and published weight files.

These are facts of the published models, copied from their sources (cited beside each one);
the embedder applies them and records them in the database metadata and the model version.

Sources for the SSL4EO-S12 Sentinel-2 ResNets (``ssl4eo-resnet18`` / ``ssl4eo-resnet50``):

* Band order. torchgeo ``torchgeo/datasets/ssl4eo.py``, ``SSL4EOS12.metadata["s2c"]["bands"]``:
  B1, B2, B3, B4, B5, B6, B7, B8, B8A, B9, B10, B11, B12 (the 13 Level-1C bands, B8A after
  B8). The channel statistics in torchgeo ``torchgeo/models/resnet.py`` (``_mean_s2``, 13
  values, the 9th 2581.0 for B8A) follow the same order.
* Normalisation and input size. torchgeo ``torchgeo/models/resnet.py``: the
  ``SENTINEL2_ALL_MOCO`` weights of ``ResNet18_Weights`` and ``ResNet50_Weights`` (and
  ``SENTINEL2_ALL_DINO`` / ``SENTINEL2_ALL_DECUR`` of ResNet-50) carry
  ``_ssl4eo_s12_transforms_s2_10k = K.AugmentationSequential(K.Resize(256), K.CenterCrop(224),
  K.Normalize(mean=0, std=10000))``: the L1C digital numbers divided by 10000, on a 224 px
  input. The authors confirm "for S2, we simply divided by 10k in pretraining"
  (https://github.com/zhu-xlab/SSL4EO-S12/issues/17, also issue #2; their README: "input clip
  to [0,1] by dividing 10000"; torchgeo's transform does not clip, nor does earthvec).
  kornia's ``Resize`` defaults are bilinear with ``align_corners=True`` on the short side
  (``kornia/augmentation/_2d/geometric/resize.py``).
* Architecture and weight files. Same torchgeo file: timm ``resnet18``/``resnet50`` with
  ``in_chans=13``; the checkpoints lack ``fc`` (torchgeo asserts missing keys are only
  ``fc.weight``/``fc.bias``); URLs below, the 8 hex digits before ``.pth`` are the start of
  the file's SHA-256 (torch.hub's ``check_hash`` convention).

earthvec chips hold physical top-of-atmosphere reflectance (``sensors.json``: L1C raw x
0.0001), so the published ``DN / 10000`` is applied as ``(reflectance x 10000 - 0) / 10000``:
``units_per_physical`` maps reflectance back to the digital numbers the transform was written
for, and ``mean``/``std`` are the transform's own numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

S2_L1C_SSL4EO_BANDS = (
    "B01",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B09",
    "B10",
    "B11",
    "B12",
)
"""SSL4EO-S12 ``s2c`` band order (B1..B8, B8A, B9..B12) in earthvec's Sentinel-2 band names."""


@dataclass(frozen=True)
class InputSpec:
    """How chips become a model's input tensor.

    Attributes:
        bands: earthvec band names in the model's channel order; every one is required.
        units_per_physical: factor from earthvec's physical values to the units of ``mean``/``std``.
        mean: per-channel mean subtracted (in those units), one value or one per band.
        std: per-channel divisor (in those units), one value or one per band.
        resize: the short side is resized to this many pixels (bilinear).
        crop: then a centred square of this many pixels is cut (the model's input size).
        align_corners: the bilinear resize's ``align_corners`` (kornia's default: True).
        missing_bands: ``"refuse"``: a chip without a required band is an error.
        nodata: how NaN pixels inside a chip's valid bands are filled before the model.
    """

    bands: tuple[str, ...]
    units_per_physical: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int
    crop: int
    align_corners: bool = True
    missing_bands: str = "refuse"
    nodata: str = "chip-band-mean"

    def per_band(self, values: tuple[float, ...]) -> list[float]:
        """``values`` broadcast to one per band."""
        return list(values) * len(self.bands) if len(values) == 1 else list(values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (database metadata, version hash)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass(frozen=True)
class WeightsSource:
    """A published weight file the user may fetch with ``--allow-download``."""

    url: str
    source: str
    note: str = ""

    @property
    def filename(self) -> str:
        """The file name the URL ends in (the name of the cached copy)."""
        return self.url.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class ModelSpec:
    """A pretrained model: architecture, input and the published weights it accepts."""

    name: str
    arch: str
    input: InputSpec
    weights: dict[str, WeightsSource] = field(default_factory=dict)
    title: str = ""


SSL4EO_S2_L1C = InputSpec(
    bands=S2_L1C_SSL4EO_BANDS,
    units_per_physical=10000.0,  # reflectance -> L1C digital number (sensors.json scale 0.0001)
    mean=(0.0,),  # torchgeo _ssl4eo_s12_transforms_s2_10k: K.Normalize(mean=0, std=10000)
    std=(10000.0,),
    resize=256,  # K.Resize(256)
    crop=224,  # K.CenterCrop(224)
)

_TORCHGEO = "torchgeo/models/resnet.py (https://github.com/microsoft/torchgeo)"

SPECS: dict[str, ModelSpec] = {
    "ssl4eo-resnet50": ModelSpec(
        name="ssl4eo-resnet50",
        arch="resnet50",
        input=SSL4EO_S2_L1C,
        title="SSL4EO-S12 ResNet-50, 13 Sentinel-2 L1C bands (Wang et al. 2022, arXiv:2211.07044)",
        weights={
            "SENTINEL2_ALL_MOCO": WeightsSource(
                "https://hf.co/torchgeo/resnet50_sentinel2_all_moco/resolve/"
                "da4f3c9dbe09272eb902f3b37f46635fa4726879/resnet50_sentinel2_all_moco-df8b932e.pth",
                _TORCHGEO + " ResNet50_Weights.SENTINEL2_ALL_MOCO",
                "MoCo-v2",
            ),
            "SENTINEL2_ALL_DINO": WeightsSource(
                "https://hf.co/torchgeo/resnet50_sentinel2_all_dino/resolve/"
                "d7f14bf5530d70ac69d763e58e77e44dbecfec7c/resnet50_sentinel2_all_dino-d6c330e9.pth",
                _TORCHGEO + " ResNet50_Weights.SENTINEL2_ALL_DINO",
                "DINO",
            ),
            "SENTINEL2_ALL_DECUR": WeightsSource(
                "https://huggingface.co/torchgeo/decur/resolve/"
                "eba7ae5945d482a4319be046d34b552db5dd9950/rn50_ssl4eo-s12_ms_decur_ep100-fc6b09ff.pth",
                _TORCHGEO + " ResNet50_Weights.SENTINEL2_ALL_DECUR",
                "DeCUR (Wang et al. 2023, arXiv:2309.05300)",
            ),
        },
    ),
    "ssl4eo-resnet18": ModelSpec(
        name="ssl4eo-resnet18",
        arch="resnet18",
        input=SSL4EO_S2_L1C,
        title="SSL4EO-S12 ResNet-18, 13 Sentinel-2 L1C bands (Wang et al. 2022, arXiv:2211.07044)",
        weights={
            "SENTINEL2_ALL_MOCO": WeightsSource(
                "https://hf.co/torchgeo/resnet18_sentinel2_all_moco/resolve/"
                "5b8cddc9a14f3844350b7f40b85bcd32aed75918/resnet18_sentinel2_all_moco-59bfdff9.pth",
                _TORCHGEO + " ResNet18_Weights.SENTINEL2_ALL_MOCO",
                "MoCo-v2",
            ),
        },
    ),
}
"""The registered SSL4EO-S12 plugins by registry name."""


def timm_spec(arch: str, input_spec: InputSpec | None = None) -> ModelSpec:
    """The spec of ``timm:<arch>``: a timm architecture on the SSL4EO-S12 L1C input unless told otherwise."""
    return ModelSpec(
        name=f"timm:{arch}",
        arch=f"timm:{arch}",
        input=input_spec or SSL4EO_S2_L1C,
        title=f"timm {arch} with user weights",
    )
