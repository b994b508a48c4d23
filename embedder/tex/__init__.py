"""``earthvec-tex``: the default embedder, fitted spectral signature plus multi-scale texture.

See :mod:`embedder.tex.model` for the vector, :mod:`embedder.tex.fit` for what is learned
and :mod:`embedder.tex.features` for the pixel maps. Numpy only: no torch needed to embed.
"""
