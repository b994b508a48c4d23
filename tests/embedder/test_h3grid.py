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
