"""Feature extractors for the image metrics, one module per network; each registers its own.

``base``: the extractor interface, the registry, the pixels fallback and ``load_for`` (the
extractor a prepared data set's reference statistics were computed with); ``classifier``: the
data set's own classifier and the independent one (trained by prepare); ``inception``: the FID
Inception-v3; ``perceptual``: LPIPS and its construction on the classifier, the perceptual loss
term's networks.
"""

from . import classifier, inception  # noqa: F401  (registration)
from .base import EXTRACTORS, Extractor, load_for, make
from .perceptual import perceptual_network

__all__ = ["EXTRACTORS", "Extractor", "load_for", "make", "perceptual_network"]
