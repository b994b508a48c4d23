"""Published pretrained models as earthvec embedders (bring your own weights).

``plugin`` registers the names without importing torch; ``specs`` holds each model's
published facts (bands, normalisation, input size, weight files) with their sources;
``resnet`` defines the architecture in plain torch with the torchvision/timm parameter
names; ``weights`` finds, fetches (only when asked) and strictly loads weight files;
``prep`` turns chips into model inputs; ``embedder`` is the Embedder itself.
"""
