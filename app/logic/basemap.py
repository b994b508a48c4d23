"""The offline basemap: NASA Blue Marble as one image for a deck.gl ``BitmapLayer``.

The image (the global layers' optical file, ``bmng.jpg`` in the global data folder of
:func:`embedder.globe.layers.default_global_dir`; plate carree, -180..180 x 90..-90) is shrunk
and sent inline as a ``data:`` URL, so the browser never fetches map tiles from the internet.
"""

from __future__ import annotations

import base64
import io
from functools import lru_cache
from pathlib import Path

from PIL import Image

from embedder.globe.layers import default_global_dir, layer_table

BASEMAP_LAYER = "optical"
"""The global layer drawn as the basemap (Blue Marble)."""
BOUNDS = (-180.0, -90.0, 180.0, 90.0)
"""``[west, south, east, north]`` of the image in degrees."""

WIDTH = 2048
"""Pixels across the shrunk image (about 0.18 degrees per pixel)."""


def find_basemap(path: Path | None = None) -> Path | None:
    """The Blue Marble file: ``path`` when given, else the global layer's file; None when absent.

    The global layers are found like every other data (``$EARTHVEC_GLOBAL_DATA``, else
    ``global/`` in the data folder of :func:`embedder.datapath.data_dir`).
    """
    if path is None:
        path = default_global_dir() / layer_table()[BASEMAP_LAYER]["file"]
    return path if path.is_file() else None


@lru_cache(maxsize=4)
def data_url(path: str, width: int = WIDTH, quality: int = 85) -> str:
    """The image at ``path`` shrunk to ``width`` pixels across, as a JPEG data URL."""
    with Image.open(path) as im:
        rgb = im.convert("RGB")
        height = max(1, round(rgb.height * width / rgb.width))
        small = rgb.resize((width, height), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, format="JPEG", quality=quality)
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
