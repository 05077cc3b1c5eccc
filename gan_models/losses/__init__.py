"""Losses and the tricks that change how a loss is computed.

``base``: the loss interface the training loop calls (``accumulate_gradients`` per phase), the
tricks any loss takes, the registry; ``adversarial``: the objectives of generation from noise;
``translation``: pix2pix and CycleGAN; ``augment``: DiffAugment policies.  Each module registers
its losses beside their classes.
"""

from .augment import AUGMENTATIONS, diff_augment
from .base import LOSSES, Batch, Context, GANLoss, Stats, Tricks
from .adversarial import (BCELoss, HingeLoss, LSGANLoss, WassersteinGPLoss, WassersteinLoss,  # noqa: I001
                          gradient_penalty)
from .translation import CycleGANLoss, ImagePool, Pix2PixLoss

__all__ = ["AUGMENTATIONS", "diff_augment", "LOSSES", "Batch", "Context", "GANLoss", "Stats", "Tricks", "BCELoss",
           "HingeLoss", "LSGANLoss", "WassersteinGPLoss", "WassersteinLoss", "gradient_penalty", "CycleGANLoss",
           "ImagePool", "Pix2PixLoss"]
