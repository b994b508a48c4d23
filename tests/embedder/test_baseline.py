import numpy as np

from embedder.baseline import ChannelStats
from embedder.batch import ChipBatch, ModalityBatch
from embedder.chipplan import item_geometry, plan_chips
from embedder.chips import read_chips
from embedder.registry import get_embedder, model_id
from embedder.sensors import get_sensor
from embedder.sources import group_items, resolve_sources
from tests.conftest import EUROSAT_GLOB


def _batch(n=8):
    s = get_sensor("sentinel2-l1c-eurosat")
    items = group_items(resolve_sources([EUROSAT_GLOB])[:n], s)
    data = np.concatenate([read_chips(i, plan_chips(i, item_geometry(i), 8, "chip"), "chip") for i in items])
    wl = np.array([b.wavelength_nm for b in s.bands], dtype=float)
    return ChipBatch({"optical": ModalityBatch(s.name, s.band_names, wl, data, np.ones(n, bool))})


def test_stats_matches_numpy_oracle():
    b = _batch()
    emb = get_embedder("stats")
    feats = emb.features(b)
    s = get_sensor("sentinel2-l1c-eurosat")
    mb = b.modalities["optical"]
    j = emb._slot_index("optical", "B04", 665.0)
    z = (mb.data[:, 3] - s.band("B04").mean) / s.band("B04").std
    np.testing.assert_allclose(feats[:, j], z.reshape(8, -1).mean(axis=1), rtol=1e-5)
    out = emb.embed(b)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert model_id(emb).startswith("stats@")


def test_nodata_pixels_are_ignored_not_zero():
    b = _batch(2)
    mb = b.modalities["optical"]
    holed = mb.data.copy()
    holed[:, :, :32] = np.nan  # top half missing
    half = ChipBatch({"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, holed, mb.present)})
    top_cut = ChipBatch(
        {"optical": ModalityBatch(mb.sensor, mb.bands, mb.wavelengths, mb.data[:, :, 32:], mb.present)}
    )
    e = ChannelStats()
    np.testing.assert_allclose(e.features(half), e.features(top_cut), rtol=1e-5)


def test_band_subset_keeps_the_same_slots():
    b = _batch(4)
    sub = ChipBatch({"optical": b.modalities["optical"].select_bands(["B02", "B03", "B04", "B08"])})
    e = ChannelStats()
    full, part = e.features(b), e.features(sub)
    j = e._slot_index("optical", "B04", 665.0)
    np.testing.assert_allclose(full[:, j], part[:, j], rtol=1e-6)
