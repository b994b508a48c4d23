"""The earthvec multimodal embedder ("earthvec-mm"): network, training, checkpoints, evaluation.

Only the modules that build or run the network import torch (``net``, ``prep``, ``losses``,
``train``, ``checkpoint``, ``embedder``). ``plugin`` registers the embedder without torch,
``config``, ``data`` and ``probes`` are numpy only.
"""
