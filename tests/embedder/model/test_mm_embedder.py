"""The multimodal embedder on real chips: shapes, band subsets, missing modalities, nodata."""

from __future__ import annotations

import numpy as np
import pytest

from embedder.batch import ChipBatch, ModalityBatch
from embedder.errors import EarthvecError
from embedder.model import data as sources
from embedder.sensors import get_sensor


def _first(chips: sources.LabelledChips, n: int) -> ChipBatch:
    return chips.batch.take(np.arange(n))


def test_forward_shape_and_unit_norm(mm, eurosat_chips) -> None:
    x = mm.embed(_first(eurosat_chips, 24))
    assert x.shape == (24, 64) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert len({tuple(np.round(r, 4)) for r in x}) == 24  # distinct chips, distinct vectors


def test_batch_size_does_not_change_vectors(random_ckpt, eurosat_chips) -> None:
    from embedder.model.embedder import MultimodalEmbedder

    batch = _first(eurosat_chips, 20)
    a = MultimodalEmbedder(random_ckpt, device="cpu", batch_size=7).embed(batch)
    b = MultimodalEmbedder(random_ckpt, device="cpu", batch_size=64).embed(batch)
    np.testing.assert_allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "bands", [("B04", "B03", "B02"), ("B08",), ("B02", "B04", "B08", "B11", "B12", "B8A"), ("B12", "B01")]
)
def test_any_band_subset_embeds(mm, eurosat_chips, bands) -> None:
    mb = _first(eurosat_chips, 12).modalities["optical"].select_bands(list(bands))
    x = mm.embed(ChipBatch({"optical": mb}))
    assert x.shape == (12, 64)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_band_order_does_not_matter(mm, eurosat_chips) -> None:
    mb = _first(eurosat_chips, 10).modalities["optical"]
    rev = mb.select_bands(list(reversed(mb.bands)))
    np.testing.assert_allclose(
        mm.embed(ChipBatch({"optical": mb})), mm.embed(ChipBatch({"optical": rev})), atol=1e-4
    )


def test_landsat_band_set_embeds_with_same_weights(mm) -> None:
    crops = sources.random_crops(sources.load_landsat(), 6, np.random.default_rng(1))
    x = mm.embed(crops)
    assert x.shape == (6, 64) and np.isfinite(x).all()


def test_missing_modality_is_masked_not_zero_filled(mm, ben_crops) -> None:
    sar = ben_crops.modalities["sar"]
    absent = ModalityBatch(
        sar.sensor, sar.bands, sar.wavelengths, np.full_like(sar.data, np.nan), np.zeros(len(sar), dtype=bool)
    )
    masked = mm.embed(ChipBatch({"optical": ben_crops.modalities["optical"], "sar": absent}))
    dropped = mm.embed(ben_crops.without("sar"))
    np.testing.assert_allclose(masked, dropped, atol=1e-5)
    zeros = ModalityBatch(
        sar.sensor, sar.bands, sar.wavelengths, np.zeros_like(sar.data), np.ones(len(sar), dtype=bool)
    )
    zero_filled = mm.embed(ChipBatch({"optical": ben_crops.modalities["optical"], "sar": zeros}))
    assert np.abs(zero_filled - masked).max() > 1e-2
    both = mm.embed(ben_crops)
    assert np.abs(both - masked).max() > 1e-2  # the real SAR data does change the vector


def test_single_modality_sar_embeds(mm, ben_crops) -> None:
    x = mm.embed(ben_crops.without("optical"))
    assert x.shape == (8, 64)
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)


def test_nodata_pixels_are_masked_and_empty_chips_give_zero_rows(mm, eurosat_chips) -> None:
    mb = _first(eurosat_chips, 4).modalities["optical"]
    data = mb.data.copy()
    data[1, :, :32, :] = np.nan  # half of chip 1 has no data
    data[2] = np.nan  # chip 2 has none
    present = np.array([True, True, False, True])
    x = mm.embed(ChipBatch({"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, data, present)}))
    assert np.isfinite(x).all()
    assert np.allclose(x[2], 0.0)
    np.testing.assert_allclose(np.linalg.norm(x[[0, 1, 3]], axis=1), 1.0, atol=1e-5)
    full = mm.embed(ChipBatch({"optical": mb}))
    assert np.abs(full[1] - x[1]).max() > 1e-3


def test_unknown_non_optical_band_is_refused(mm, ben_crops) -> None:
    sar = ben_crops.modalities["sar"]
    odd = ModalityBatch(sar.sensor, ("HH", "VH"), sar.wavelengths, sar.data, sar.present)
    with pytest.raises(EarthvecError, match="HH"):
        mm.embed(ChipBatch({"sar": odd}))


def test_global_chips_embed(mm) -> None:
    from embedder.globe.layers import GlobalLayers

    batch = GlobalLayers().chips(np.array([48.1, -3.1, 64.0]), np.array([11.6, -60.0, 20.0]))
    x = mm.embed(batch)
    assert x.shape == (3, 64) and np.isfinite(x).all()
    assert set(batch.modalities) <= {"optical", "elevation", "climate"}
    assert get_sensor(batch.modalities["optical"].sensor).modality == "optical"
