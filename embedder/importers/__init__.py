"""Importers: other products' embeddings turned into earthvec rows (``earthvec import``).

One module per product reads its published layout (facts in ``products.json``):

* pixel products, pooled per H3 cell (:mod:`~embedder.importers.pool`):
  :mod:`~embedder.importers.satellite_embedding` (Google Satellite Embedding / AlphaEarth),
  :mod:`~embedder.importers.tessera` (TESSERA / geotessera);
* chip products, one vector per chip at the cell of its centre (:mod:`~embedder.importers.chips`):
  :mod:`~embedder.importers.majortom`, :mod:`~embedder.importers.clay`,
  :mod:`~embedder.importers.earthindex`.

:func:`import_product` is the front door; :mod:`~embedder.importers.rows` writes the rows
(contract tables, one shard per H3 partition). Nothing here imports torch.
"""

from __future__ import annotations

from embedder.importers.products import get_product, product_names
from embedder.importers.rows import ImportReport
from embedder.importers.run import DEFAULT_PIXEL_RES, import_product

__all__ = ["DEFAULT_PIXEL_RES", "ImportReport", "get_product", "import_product", "product_names"]
