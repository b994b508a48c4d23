"""The SSL4EO plugins on real EuroSAT chips: shapes, band mapping, the published transform, versions."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F  # noqa: N812

from embedder.batch import ChipBatch, ModalityBatch
from embedder.build import SourceSpec, build_db
from embedder.contract import read_table
from embedder.errors import MissingBandError
from embedder.interface import Embedder
from embedder.pretrained import prep
from embedder.pretrained.resnet import ResNetFeatures
from embedder.pretrained.specs import S2_L1C_SSL4EO_BANDS
from embedder.registry import get_embedder
from tests.conftest import BEN_S2_GLOB
from tests.embedder.conftest import rewrite
from tests.embedder.pretrained.conftest import EUROSAT, chip_batch, eurosat_files


def test_unit_vectors_of_the_pooled_feature_length(r18, r18_vectors: np.ndarray) -> None:  # noqa: ANN001
    assert isinstance(r18, Embedder)
    v = r18_vectors
    assert v.shape == (4, 512) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert r18.config()["input"]["bands"] == list(S2_L1C_SSL4EO_BANDS)
    assert r18.normalisation()["bands"]["B8A"] == [0.0, 10000.0]


def published_transform_oracle(files: list[Path], weights: Path) -> np.ndarray:
    """torchgeo's SENTINEL2_ALL transform written out from the raw files: no earthvec code path.

    Raw L1C digital numbers in SSL4EO band order -> Resize(256) (bilinear, align_corners=True,
    kornia's default) -> CenterCrop(224) -> Normalize(mean=0, std=10000) -> ResNet-18 -> pooled
    features -> L2 normalisation.
    """
    eurosat_order = [
        "B01",
        "B02",
        "B03",
        "B04",
        "B05",
        "B06",
        "B07",
        "B08",
        "B09",
        "B10",
        "B11",
        "B12",
        "B8A",
    ]
    idx = [eurosat_order.index(b) for b in S2_L1C_SSL4EO_BANDS]
    dn = np.stack([rasterio.open(f).read()[idx].astype(np.float32) for f in files])
    x = F.interpolate(torch.from_numpy(dn), size=(256, 256), mode="bilinear", align_corners=True)
    x = x[:, :, 16:240, 16:240] / 10000.0
    net = ResNetFeatures("resnet18", 13).eval()
    net.load_state_dict(torch.load(weights, weights_only=True), strict=True)
    with torch.inference_mode():
        z = net(x).numpy()
    return z / np.linalg.norm(z, axis=1, keepdims=True)


def test_the_published_transform_is_applied(r18, r18_file: Path) -> None:  # noqa: ANN001
    files = eurosat_files(2)
    want = published_transform_oracle(files, r18_file)
    got = r18.embed(chip_batch(files))
    np.testing.assert_allclose(got, want, atol=1e-6)
    # the oracle is sharp: a slightly different transform moves the vectors by far more than that
    data = np.array(chip_batch(files).modalities["optical"].select_bands(list(S2_L1C_SSL4EO_BANDS)).data)
    for change in ({"align_corners": False}, {"crop": 256}, {"std": (20000.0,)}):
        spec = replace(r18.spec.input, **change)
        with torch.inference_mode():
            z = r18.net(prep.to_tensor(data, spec, torch.device("cpu"))).numpy()
        z /= np.linalg.norm(z, axis=1, keepdims=True)
        assert np.abs(z - want).max() > 1e-4, change


def test_band_order_of_the_file_does_not_matter(r18, tmp_path: Path) -> None:  # noqa: ANN001
    files = eurosat_files(2)
    names = ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12", "B8A"]
    perm = np.random.default_rng(0).permutation(13)
    for f in files:
        with rasterio.open(f) as src:
            rewrite(str(f), tmp_path / "perm" / f.name, pixels=src.read()[perm])
    a = build_db(tmp_path / "a", [SourceSpec([str(f) for f in files], EUROSAT)], embedder=r18)
    b = build_db(
        tmp_path / "b",
        [SourceSpec([str(tmp_path / "perm" / "*.tif")], EUROSAT, [names[i] for i in perm])],
        embedder=r18,
    )
    assert a.rows_written == b.rows_written == 2
    ta = read_table(tmp_path / "a").to_pandas().sort_values("h3")
    tb = read_table(tmp_path / "b").to_pandas().sort_values("h3")
    np.testing.assert_array_equal(np.stack(ta["embedding"]), np.stack(tb["embedding"]))
    # and a wrong --bands (the same permutation, unnamed) gives other vectors
    c = build_db(tmp_path / "c", [SourceSpec([str(tmp_path / "perm" / "*.tif")], EUROSAT)], embedder=r18)
    assert c.rows_written == 2
    tc = read_table(tmp_path / "c").to_pandas().sort_values("h3")
    assert np.abs(np.stack(tc["embedding"]) - np.stack(ta["embedding"])).max() > 1e-3


def test_same_weights_same_version_other_weights_other_version(
    r18, r18_file: Path, r18_other: Path, chips: ChipBatch, r18_vectors: np.ndarray
) -> None:  # noqa: ANN001
    again = get_embedder("ssl4eo-resnet18", weights=r18_file, batch_size=3)
    assert again.version == r18.version
    np.testing.assert_allclose(again.embed(chips), r18_vectors, atol=1e-6)  # batches of 3+1 chips
    other = get_embedder("ssl4eo-resnet18", weights=r18_other)
    assert other.version != r18.version
    assert np.abs(other.embed(chips) - r18_vectors).max() > 1e-3


def test_precision_enters_the_version(r18, r18_file: Path, chips: ChipBatch, r18_vectors) -> None:  # noqa: ANN001
    bf16 = get_embedder("ssl4eo-resnet18", weights=r18_file, precision="bf16")
    assert bf16.version != r18.version and bf16.config()["precision"] == "bf16"
    cos = np.sum(bf16.embed(chips.take(np.arange(2))) * r18_vectors[:2], axis=1)
    assert cos.min() > 0.99  # bf16 autocast keeps the direction


def test_model_and_version_differ_between_architectures(r18, r50_file: Path) -> None:  # noqa: ANN001
    r50 = get_embedder("ssl4eo-resnet50", weights=r50_file)
    assert (r50.name, r50.dim) == ("ssl4eo-resnet50", 2048)
    assert r50.version != r18.version


def test_l2a_chips_without_b10_are_refused_naming_the_band(r18, tmp_path: Path) -> None:  # noqa: ANN001
    with pytest.raises(MissingBandError, match=r"needs band\(s\) B10, which 'sentinel2-l2a-bigearthnet'"):
        build_db(tmp_path / "db", [SourceSpec([BEN_S2_GLOB])], embedder=r18)
    assert not list((tmp_path / "db").rglob("*.parquet"))


def test_a_band_without_any_valid_pixel_is_refused(r18, chips: ChipBatch) -> None:  # noqa: ANN001
    mb = chips.modalities["optical"]
    data = mb.data.copy()
    data[2, mb.bands.index("B11")] = np.nan
    broken = ChipBatch({"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, data, mb.present)})
    with pytest.raises(MissingBandError, match=r"1 chip\(s\) have valid pixels but none in band\(s\) B11"):
        r18.embed(broken)


def test_nodata_pixels_take_the_chip_band_mean_and_empty_chips_get_zero_rows(r18, chips: ChipBatch) -> None:  # noqa: ANN001
    mb = chips.modalities["optical"]
    holed = mb.data.copy()
    holed[0, :, :20, :20] = np.nan  # a corner of nodata in every band
    holed[1] = np.nan  # a chip without data
    filled = holed.copy()
    filled[0] = np.where(np.isnan(holed[0]), np.nanmean(holed[0], axis=(1, 2), keepdims=True), holed[0])
    filled[1] = mb.data[1]
    v_holed = r18.embed(
        ChipBatch({"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, holed, mb.present)})
    )
    v_filled = r18.embed(
        ChipBatch({"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, filled, mb.present)})
    )
    np.testing.assert_allclose(v_holed[0], v_filled[0], atol=2e-5)
    assert not v_holed[1].any()
    np.testing.assert_array_equal(v_holed[2:], v_filled[2:])


def test_sar_only_chips_are_refused(r18, chips: ChipBatch) -> None:  # noqa: ANN001
    mb = chips.modalities["optical"]
    sar = ModalityBatch("sentinel1-grd", ("VV", "VH"), np.full(2, np.nan), mb.data[:, :2], mb.present)
    with pytest.raises(MissingBandError, match="these chips have only sar modalities"):
        r18.embed(ChipBatch({"sar": sar}))


def test_timm_matches_the_ssl4eo_plugin(r18, r18_file: Path, chips: ChipBatch) -> None:  # noqa: ANN001
    pytest.importorskip("timm", reason="timm (the models extra) is not importable here")
    t = get_embedder("timm:resnet18", weights=r18_file)
    assert t.name == "timm:resnet18" and t.config()["implementation"].startswith("timm")
    np.testing.assert_allclose(t.embed(chips), r18.embed(chips), atol=1e-5)
