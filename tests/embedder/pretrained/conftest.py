"""Fixtures for the pretrained-model plugins: real EuroSAT chips and seeded weight files made here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from embedder.batch import ChipBatch, ModalityBatch
from embedder.sensors import get_sensor
from tests.conftest import DATA

EUROSAT = "sentinel2-l1c-eurosat"


def eurosat_files(n: int) -> list[Path]:
    """``n`` real EuroSAT-MS chips, spread over the classes (sorted, deterministic)."""
    classes = sorted((DATA / "eurosat_ms" / "tif").iterdir())
    files = [sorted(c.glob("*.tif")) for c in classes]
    out = [f for group in zip(*files, strict=False) for f in group]
    return out[:n]


def chip_batch(files: list[Path], sensor: str = EUROSAT) -> ChipBatch:
    """The files' pixels in physical units as an optical batch (what the build hands embedders)."""
    s = get_sensor(sensor)
    data = np.stack([s.to_physical(rasterio.open(f).read()) for f in files])
    wl = np.array([b.wavelength_nm if b.wavelength_nm is not None else np.nan for b in s.bands], float)
    return ChipBatch({"optical": ModalityBatch(s.name, s.band_names, wl, data, np.ones(len(files), bool))})


def seeded_file(tmp: Path, arch: str, seed: int) -> Path:
    from embedder.pretrained.resnet import ResNetFeatures
    from embedder.pretrained.weights import save_seeded

    return save_seeded(ResNetFeatures(arch, 13), tmp / f"{arch}-seed{seed}.pt", seed)


@pytest.fixture(scope="session")
def weights_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="session")
def r18_file(weights_dir: Path) -> Path:
    """ResNet-18 weights for 13 bands, seeded (the architecture of the published file, not its values)."""
    return seeded_file(weights_dir, "resnet18", 0)


@pytest.fixture(scope="session")
def r18_other(weights_dir: Path) -> Path:
    return seeded_file(weights_dir, "resnet18", 1)


@pytest.fixture(scope="session")
def r50_file(weights_dir: Path) -> Path:
    return seeded_file(weights_dir, "resnet50", 0)


@pytest.fixture(scope="session")
def r18(r18_file: Path):  # noqa: ANN201
    from embedder.registry import get_embedder

    return get_embedder("ssl4eo-resnet18", weights=r18_file, device="cpu")


@pytest.fixture(scope="session")
def chips() -> ChipBatch:
    """Four real EuroSAT chips of four classes."""
    return chip_batch(eurosat_files(4))


@pytest.fixture(scope="session")
def r18_vectors(r18, chips: ChipBatch) -> np.ndarray:  # noqa: ANN001
    """``r18``'s vectors of ``chips`` (computed once)."""
    return r18.embed(chips)


@pytest.fixture(autouse=True)
def _no_download(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test may download: the hub fetch fails loudly, and the caches are empty folders."""
    import torch

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a test tried to download {args[:1]}")

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setenv("EARTHVEC_WEIGHTS_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
