"""Networks, one module per family; each registers its builders beside its classes.

``base``: the interface every generator and discriminator keeps, shared blocks, the size plan and
the registries; ``mlp``, ``dcgan``, ``resnet``, ``progan``, ``stylegan``: generators and
discriminators from noise; ``translation``: image-to-image generators and PatchGAN;
``conditioning``: several conditioning inputs fused into any generator, a projection D;
``wrappers``: PacGAN's packing and pix2pixHD's scales around any discriminator.
"""

from . import mlp, dcgan, resnet, progan, stylegan, translation  # noqa: F401  (registration order)
from .base import (DISCRIMINATORS, GENERATORS, TRANSLATORS, Discriminator, MinibatchDiscrimination, dcgan_plan,
                   spectral_norm)
from .dcgan import DCGANDiscriminator, DCGANGenerator, SelfAttention
from .mlp import MLPDiscriminator, MLPGenerator
from .progan import ProGANDiscriminator, ProGANGenerator, progressive_schedule
from .resnet import ResNetDiscriminator, ResNetGenerator
from .wrappers import MultiScale, Packed

__all__ = ["DISCRIMINATORS", "GENERATORS", "TRANSLATORS", "Discriminator", "MinibatchDiscrimination", "dcgan_plan",
           "spectral_norm", "DCGANDiscriminator", "DCGANGenerator", "SelfAttention", "MLPDiscriminator",
           "MLPGenerator", "ProGANDiscriminator", "ProGANGenerator", "progressive_schedule", "ResNetDiscriminator",
           "ResNetGenerator", "MultiScale", "Packed"]
