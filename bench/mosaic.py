"""Large scenes for ingest benchmarks and tests: GDAL VRT mosaics of the real rasters in ``data/``.

A **throughput set**, not imagery of a real place: the pixels are real (every VRT source is
an unchanged real file), but they are tiled side by side to make scenes as large as the
products people ingest, so reading speed and memory can be measured at full size.

- :func:`s2_tile` writes one VRT per band (``..._B02.vrt``: the BigEarthNet layout, so the
  ``sentinel2-l2a-bigearthnet`` preset groups them) with the pixel grid of a full Sentinel-2
  L2A tile: 10,980 x 10,980 px at 10 m (5,490 at 20 m, 1,830 at 60 m), georeferenced as
  tile 33UUP (UTM 33N, where the Austrian patch lies). Its sources are the 4 real BigEarthNet
  S2 patches (1.2 km each), repeated in a 92 x 92 checkerboard
  (blocks of 23 x 23 patches, themselves VRTs, so a read scans few sources).
- :func:`landsat_mosaic` writes one VRT per band of ``k`` x ``k`` copies of the real Landsat-8
  scene on its own 30 m grid (``k=1`` is the scene itself, as a VRT).

Sources carry their size in the VRT, so GDAL opens a source file only when a read touches it.
"""

from __future__ import annotations

import glob
import math
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

S2_TILE_PX = 10980
S2_TILE_ORIGIN = (399960.0, 5400000.0)  # upper-left of MGRS tile 33UUP
S2_TILE_EPSG = 32633
S2_TILE_NAME = "S2A_MSIL2A_20170613T101031_T33UUP"  # the time of the Austrian patch
S2_BLOCK = 23  # patches a side in one block VRT (23 x 120 px = 2,760 px at 10 m)
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12", "B8A")

_SOURCE = """    <SimpleSource>
      <SourceFilename relativeToVRT="0">{path}</SourceFilename>
      <SourceBand>1</SourceBand>
      <SourceProperties RasterXSize="{w}" RasterYSize="{h}" DataType="{dtype}"
        BlockXSize="{bw}" BlockYSize="{bh}"/>
      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>
      <DstRect xOff="{x}" yOff="{y}" xSize="{w}" ySize="{h}"/>
    </SimpleSource>
"""


def _gdal_type(dtype: str) -> str:
    return {"uint8": "Byte", "uint16": "UInt16", "int16": "Int16", "float32": "Float32"}[dtype]


def write_vrt(
    dst: Path,
    sources: list[tuple[str, int, int]],
    size: tuple[int, int],
    transform: tuple[float, float, float, float, float, float],
    epsg: int,
    nodata: float | None = None,
) -> Path:
    """Write a one-band VRT placing ``sources`` (path, x offset, y offset in pixels) on a grid.

    Args:
        dst: the ``.vrt`` file to write.
        sources: real single-band rasters and where their upper-left pixel goes.
        size: (width, height) of the mosaic in pixels.
        transform: GDAL geotransform (x0, dx, 0, y0, 0, -dy).
        epsg: CRS of the mosaic.
        nodata: nodata value to declare (None: none).
    """
    info: dict[str, tuple[int, int, str, int, int]] = {}
    parts = []
    for path, x, y in sources:
        if path not in info:
            with rasterio.open(path) as src:
                bw, bh = src.block_shapes[0][1], src.block_shapes[0][0]
                info[path] = (src.width, src.height, _gdal_type(src.dtypes[0]), bw, bh)
        w, h, dtype, bw, bh = info[path]
        parts.append(
            _SOURCE.format(
                path=escape(str(Path(path).resolve())), w=w, h=h, dtype=dtype, bw=bw, bh=bh, x=x, y=y
            )
        )
    dtype = next(iter(info.values()))[2]
    srs = rasterio.crs.CRS.from_epsg(epsg).to_wkt()
    nd = f"    <NoDataValue>{nodata}</NoDataValue>\n" if nodata is not None else ""
    text = (
        f'<VRTDataset rasterXSize="{size[0]}" rasterYSize="{size[1]}">\n'
        f"  <SRS>{escape(srs)}</SRS>\n"
        f"  <GeoTransform>{', '.join(repr(float(v)) for v in transform)}</GeoTransform>\n"
        f'  <VRTRasterBand dataType="{dtype}" band="1">\n{nd}'
        + "".join(parts)
        + "  </VRTRasterBand>\n</VRTDataset>\n"
    )
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return dst


def s2_tile(data: Path, out: Path, tile_px: int = S2_TILE_PX) -> list[Path]:
    """A Sentinel-2 tile of ``tile_px`` x ``tile_px`` 10 m pixels mosaicked from the BigEarthNet patches.

    Two VRT levels keep each read cheap (GDAL scans a VRT's sources on every read): a block of
    ``S2_BLOCK`` x ``S2_BLOCK`` patches, repeated to cover the tile. Returns the per-band tile
    VRTs (give them to ``earthvec build`` as one source: they group into one item).
    """
    patches = sorted(glob.glob(str(data / "bigearthnet_s1s2" / "S2" / "*")))
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for band in S2_BANDS:
        files = [glob.glob(f"{p}/*_{band}.tif")[0] for p in patches]
        with rasterio.open(files[0]) as src:
            gsd, patch = float(src.res[0]), src.width
        x0, y0 = S2_TILE_ORIGIN
        transform = (x0, gsd, 0.0, y0, 0.0, -gsd)
        b_px = S2_BLOCK * patch
        cells = [
            (files[(i + 2 * j) % len(files)], i * patch, j * patch)
            for j in range(S2_BLOCK)
            for i in range(S2_BLOCK)
        ]
        block = write_vrt(out / "blocks" / f"block_{band}.vrt", cells, (b_px, b_px), transform, S2_TILE_EPSG)
        n_px = math.ceil(tile_px * 10.0 / gsd)
        n = math.ceil(n_px / b_px)
        tiles = [(str(block), i * b_px, j * b_px) for j in range(n) for i in range(n)]
        written.append(
            write_vrt(out / f"{S2_TILE_NAME}_{band}.vrt", tiles, (n_px, n_px), transform, S2_TILE_EPSG)
        )
    return written


def landsat_mosaic(data: Path, out: Path, k: int) -> list[Path]:
    """``k`` x ``k`` copies of the real Landsat-8 scene per band (30 m; B8 at 15 m), as VRTs."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for f in sorted(glob.glob(str(data / "landsat8" / "l8_B*.tif"))):
        with rasterio.open(f) as src:
            w, h, t, epsg = src.width, src.height, src.transform, src.crs.to_epsg()
        sources = [(f, i * w, j * h) for j in range(k) for i in range(k)]
        name = Path(f).name.replace("l8_", f"LC80200392015216LGN00_x{k}_").replace(".tif", ".vrt")
        written.append(write_vrt(out / name, sources, (k * w, k * h), (t.c, t.a, 0.0, t.f, 0.0, t.e), epsg))
    mtl = data / "landsat8" / "l8_MTL.txt"
    (out / f"LC80200392015216LGN00_x{k}_MTL.txt").write_text(mtl.read_text())
    return written
