"""The earthvec multimodal embedder ("earthvec-mm"): network, training, checkpoints, evaluation.

Design (see the module docstrings for details):

* ``net``: one small conv encoder per modality (optical, sar, elevation, climate) into one
  128-d space. Stem filters (4x4, stride 4) and the weights of a spectral branch (per-band
  chip mean/std) are generated from each band's wavelength by a hyper-network (optical) or
  looked up by band key (non-optical), and averaged over the bands a chip has: any subset
  of Sentinel-2 bands, Landsat-8 bands or RGB embeds with the same weights. Chips fuse the
  modalities they have (presence mask, never zero-filling); nodata pixels are masked.
* ``train``: self-supervised objectives from the seed papers, each switchable
  (``TrainConfig``): augmentation views (InfoNCE), cross-modal InfoNCE, modality-discriminative
  co-learning (shared/specific parts + discriminators), multi-pretext masked autoencoding.
* ``checkpoint``: weights + configs + normalisation + version hash; default file
  ``data/models/earthvec-mm.pt`` (or ``embedder/weights/``, or ``$EARTHVEC_MM_WEIGHTS``).
* ``evaluate`` / ``probes``: ``earthvec eval`` (kNN, logistic regression, few-shot curves,
  spatially blocked CV, missing-band robustness, BigEarthNet S1->S2 retrieval).

Only ``net``, ``prep``, ``heads``, ``losses``, ``train``, ``checkpoint`` and ``embedder``
import torch; ``plugin`` registers the embedder without torch; ``config``, ``data``,
``probes`` and ``evaluate`` are numpy only.
"""
