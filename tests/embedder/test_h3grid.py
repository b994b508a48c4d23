import h3.api.basic_int as h3i
import numpy as np
import pytest
import shapely

from embedder.errors import QueryError
from embedder.h3grid import cell_wkb, check_latlon, descendant_range, parse_cell


def test_parse_cell_accepts_hex_and_int():
    c = h3i.latlng_to_cell(48.1, 11.5, 8)
    assert parse_cell(h3i.int_to_str(c)) == c == parse_cell(c)


@pytest.mark.parametrize("bad", ["zzz", "8828308281fffffff", "", "123"])
def test_invalid_h3_is_a_query_error(bad):
    with pytest.raises(QueryError, match="H3 cell"):
        parse_cell(bad)


@pytest.mark.parametrize(("lat", "lon"), [(91, 0), (-90.5, 0), (0, 181), (float("nan"), 0)])
def test_latlon_out_of_range(lat, lon):
    with pytest.raises(QueryError, match="out of range"):
        check_latlon(lat, lon)


@pytest.mark.parametrize("lat", [48.1, -33.9, 0.0, 85.0])
def test_descendant_range_is_exact(lat):
    parent = h3i.latlng_to_cell(lat, 11.5, 4)
    lo, hi = descendant_range(parent, 7)
    kids = np.array(sorted(h3i.cell_to_children(parent, 7)), dtype=np.uint64)
    assert kids.min() >= lo and kids.max() <= hi
    for nb in h3i.grid_ring(parent, 1):
        others = np.array(list(h3i.cell_to_children(nb, 7)), dtype=np.uint64)
        assert not np.any((others >= lo) & (others <= hi))


def test_wkb_polygon_contains_centre_even_across_antimeridian():
    for lat, lon in [(50.0, 10.0), (65.0, 179.99), (-16.0, -179.99)]:
        c = h3i.latlng_to_cell(lat, lon, 5)
        poly = shapely.from_wkb(cell_wkb(c))
        clat, clon = h3i.cell_to_latlng(c)
        assert poly.is_valid
        assert any(poly.contains(shapely.Point(clon + d, clat)) for d in (0, 360, -360))
        assert poly.area < 1.0  # never a band around the globe


def test_geojson_polygon_unwraps_at_the_antimeridian():
    import json

    from app.logic.export import geojson
    from embedder.h3grid import cell_geojson

    cell = h3i.latlng_to_cell(0.0, 179.99, 3)
    raw = [lng for _, lng in h3i.cell_to_boundary(cell)]
    assert max(raw) - min(raw) > 300  # h3 gives vertices on both sides of +-180
    feature = json.loads(geojson(np.array([cell], dtype=np.uint64), {}))["features"][0]
    ring = feature["geometry"]["coordinates"]
    assert ring == cell_geojson(cell)
    lons = [p[0] for p in ring[0]]
    assert max(lons) - min(lons) < 5.0 and ring[0][0] == ring[0][-1]
    poly = shapely.Polygon(ring[0])
    assert poly.is_valid and poly.area < 5.0
    lat, lon = h3i.cell_to_latlng(cell)
    lon = lon + 360.0 if lon < min(lons) else lon - 360.0 if lon > max(lons) else lon
    assert poly.contains(shapely.Point(lon, lat))


def test_cell_parents_match_h3_and_check_resolutions():
    from embedder.h3grid import cell_parents

    rng = np.random.default_rng(1)
    pts = zip(rng.uniform(-80, 80, 200), rng.uniform(-180, 180, 200), strict=True)
    cells = np.array([h3i.latlng_to_cell(float(a), float(b), 7) for a, b in pts], dtype=np.uint64)
    for res in range(8):
        assert cell_parents(cells, res).tolist() == [h3i.cell_to_parent(int(c), res) for c in cells]
    with pytest.raises(QueryError):
        cell_parents(cells, 8)
    with pytest.raises(QueryError):
        cell_parents(cells, -1)
