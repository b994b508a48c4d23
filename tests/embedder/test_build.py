import glob
from pathlib import Path

import duckdb
import numpy as np
import pyarrow.parquet as pq
import pytest

from bench.bad_files import corrupt_pixels
from embedder import contract
from embedder.baseline import ChannelStats
from embedder.build import SourceSpec, build_db
from embedder.errors import ModelMismatchError, QueryError, RasterError
from tests.conftest import EUROSAT_GLOB, LANDSAT_GLOB
from tests.embedder.conftest import rewrite


def test_eurosat_one_row_per_chip_with_its_file(eurosat_db, eurosat_manifest):
    t = contract.read_table(eurosat_db).to_pandas()
    assert len(t) == 369
    files = {s[0] for s in t[contract.SOURCE]}
    assert files == set(eurosat_manifest.abspath)
    assert (t[contract.VALID_FRACTION] == 1.0).all()
    emb = contract.embeddings_matrix(contract.read_table(eurosat_db))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    # cell centre of each row lies within ~1 km of the chip centre in the manifest
    m = eurosat_manifest.set_index("abspath").loc[[s[0] for s in t[contract.SOURCE]]]
    assert np.abs(t[contract.LAT].to_numpy() - m.center_lat.to_numpy()).max() < 0.01


def test_parquet_opens_in_duckdb_pyarrow_geopandas(eurosat_db):
    import geopandas as gpd

    files = glob.glob(str(eurosat_db / "embeddings" / "*" / "*.parquet"))
    n = (
        duckdb.connect()
        .execute(
            f"select count(*) from read_parquet('{eurosat_db}/embeddings/*/*.parquet', "
            "hive_partitioning=true)"
        )
        .fetchone()[0]
    )
    assert n == 369
    schema = pq.read_schema(files[0])
    assert schema.field(contract.EMBEDDING).type.list_size == ChannelStats().dim
    g = gpd.read_parquet(files[0])
    assert g.crs is not None and g.crs.to_string() == "OGC:CRS84"
    assert g.geometry.is_valid.all()
    centres = gpd.GeoSeries(gpd.points_from_xy(g[contract.LON], g[contract.LAT]), index=g.index, crs=g.crs)
    assert g.geometry.contains(centres).all()


def test_rebuild_skips_finished_shards(tmp_path):
    src = [str(Path(EUROSAT_GLOB).parent.parent / "Forest" / "*.tif")]
    r1 = build_db(tmp_path / "db", src)
    r2 = build_db(tmp_path / "db", src)
    assert r1.rows_written == 40 and r1.shards_written == r1.shards_total
    assert r2.rows_written == 0 and r2.shards_skipped == r1.shards_total
    assert len(contract.read_table(tmp_path / "db")) == 40


def test_changed_sources_replace_rows_instead_of_doubling(tmp_path):
    """Same cells from other files (a new shard key): upserted by (h3, datetime), never doubled."""
    forest = sorted(glob.glob(str(Path(EUROSAT_GLOB).parent.parent / "Forest" / "*.tif")))
    copies = tmp_path / "copies"
    copies.mkdir()
    for f in forest[:10]:
        (copies / Path(f).name).write_bytes(Path(f).read_bytes())
    db = tmp_path / "db"
    build_db(db, forest, sensor="sentinel2-l1c-eurosat")
    report = build_db(db, [str(copies / "*.tif")], sensor="sentinel2-l1c-eurosat")
    assert report.rows_written == 10 and report.rows_total == 40
    t = contract.read_table(db).to_pandas()
    assert len(t) == 40 and t[contract.H3].is_unique
    sources = {s[0] for s in t[contract.SOURCE]}
    assert len(sources & {str(copies / Path(f).name) for f in forest[:10]}) == 10
    assert not sources & set(forest[:10])  # the old rows of those cells are gone


def test_stricter_min_valid_removes_rows_below_it(tmp_path):
    """``min_valid`` is part of the shard key: a re-run with a new threshold is not skipped."""
    db = tmp_path / "db"
    first = build_db(db, [SourceSpec([LANDSAT_GLOB])])
    vf = contract.read_table(db).column(contract.VALID_FRACTION).to_numpy()
    assert (vf < 0.9).any()
    again = build_db(db, [SourceSpec([LANDSAT_GLOB])], min_valid=0.9)
    assert again.shards_skipped == 0 and again.rows_dropped_low_valid == int((vf <= 0.9).sum())
    t = contract.read_table(db)
    assert t.num_rows == first.rows_written - int((vf <= 0.9).sum())
    assert t.column(contract.VALID_FRACTION).to_numpy().min() > 0.9


def test_bad_resolution_is_an_earthvec_error(tmp_path):
    with pytest.raises(QueryError, match=r"--res 16 is not an H3 resolution; use 0\.\.15"):
        build_db(tmp_path / "db", [EUROSAT_GLOB], res=16)
    assert not (tmp_path / "db").exists()  # refused before anything was written


class _OtherModel(ChannelStats):
    def __init__(self):
        super().__init__()
        self.version = "000000other"


def test_refuses_to_mix_model_versions(tmp_path):
    src = [str(Path(EUROSAT_GLOB).parent.parent / "River" / "*.tif")]
    build_db(tmp_path / "db", src)
    with pytest.raises(ModelMismatchError, match="never mix model versions|Never mix model versions"):
        build_db(
            tmp_path / "db",
            [str(Path(EUROSAT_GLOB).parent.parent / "Forest" / "*.tif")],
            embedder=_OtherModel(),
        )
    # a file dropped beside the manifest is not part of the database: readers never see it
    other = tmp_path / "other"
    build_db(other, [str(Path(EUROSAT_GLOB).parent.parent / "Forest" / "*.tif")], embedder=_OtherModel())
    stray = contract.embedding_files(other)[0]
    target = contract.embeddings_dir(tmp_path / "db") / stray.parent.name / "part-stray.parquet"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(stray.read_bytes())
    assert contract.read_meta(tmp_path / "db").model_version != "000000other"
    assert target not in contract.embedding_files(tmp_path / "db")
    # a folder without a manifest (old earthvec) that mixes models is refused, naming both
    contract.manifest_path(tmp_path / "db").unlink()
    with pytest.raises(ModelMismatchError, match="000000other"):
        contract.read_meta(tmp_path / "db")
    with pytest.raises(ModelMismatchError, match="000000other"):  # and never adopted by a writer
        build_db(tmp_path / "db", [str(Path(EUROSAT_GLOB).parent.parent / "River" / "*.tif")])


def test_all_nodata_chip_is_refused_and_nothing_written(tmp_path, eurosat_manifest):
    empty = rewrite(eurosat_manifest.abspath[0], tmp_path / "in" / "empty.tif", pixels=np.zeros((13, 64, 64)))
    with pytest.raises(RasterError, match=r"empty\.tif.*no valid pixel.*--skip-empty"):
        build_db(tmp_path / "db", [str(empty)], sensor="sentinel2-l1c-eurosat")
    assert not (tmp_path / "db" / "embeddings").exists() or not list((tmp_path / "db").rglob("*.parquet"))
    report = build_db(tmp_path / "db", [str(empty)], sensor="sentinel2-l1c-eurosat", skip_empty=True)
    assert report.rows_written == 0 and report.rows_dropped_empty == 1


def test_s1_and_s2_align_by_cell(ben_db):
    t = contract.read_table(ben_db).to_pandas()
    assert len(t) == 4
    assert all(list(m) == ["optical", "sar"] for m in t[contract.MODALITIES])
    assert all(len(s) == 14 for s in t[contract.SOURCE])  # 12 S2 band files + VV + VH
    assert t[contract.DATETIME].notna().all()


def test_landsat_scene_build_measures_partial_chips(tmp_path):
    report = build_db(tmp_path / "db", [SourceSpec([LANDSAT_GLOB])])
    t = contract.read_table(tmp_path / "db").to_pandas()
    assert report.resolution == 7 and len(t) == report.rows_written > 30
    assert t[contract.VALID_FRACTION].min() < 1.0 <= t[contract.VALID_FRACTION].max()
    assert str(t[contract.DATETIME].iloc[0].date()) == "2015-08-04"


def test_a_bad_file_publishes_nothing_and_the_rerun_resumes(tmp_path):
    """A corrupt input found mid-build: nothing is published, the finished shards are kept and reused."""
    import shutil

    from embedder.h3grid import cell_parents

    kw = {"sensor": "sentinel2-l1c-eurosat", "model": "stats", "partition_res": 6}
    folder = tmp_path / "in"
    folder.mkdir()
    for f in sorted(glob.glob(str(Path(EUROSAT_GLOB).parent.parent / "Forest" / "*.tif")))[:6]:
        shutil.copy(f, folder)
    ref = contract.read_table(build_db(tmp_path / "ref", [str(folder / "*.tif")], **kw).db)
    parents = cell_parents(ref.column(contract.H3).to_numpy().astype("uint64"), 6)
    last = Path(ref.column(contract.SOURCE)[int(parents.argmax())].as_py()[0]).name  # its shard runs last
    good = tmp_path / last
    shutil.move(folder / last, good)
    corrupt_pixels(good, folder / last)  # header intact, pixel strips garbage
    with pytest.raises(RasterError, match=rf"{last}.*nothing was published.*resumes"):
        build_db(tmp_path / "db", [str(folder / "*.tif")], **kw)
    m = contract.read_manifest(tmp_path / "db")
    assert m is None or not m.partitions  # readers see no rows
    shutil.copy(good, folder / last)  # mend the file
    r = build_db(tmp_path / "db", [str(folder / "*.tif")], **kw)
    assert r.shards_skipped >= 1 and r.rows_written < r.rows_planned  # finished shards reused
    got = contract.read_table(tmp_path / "db")
    assert got.num_rows == 6 and got.column(contract.H3).equals(ref.column(contract.H3))
    assert contract.embeddings_matrix(got).tobytes() == contract.embeddings_matrix(ref).tobytes()
