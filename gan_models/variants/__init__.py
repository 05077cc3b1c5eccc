"""Variants: named presets composing a generator, a discriminator and a loss.

``spec``: a variant's settings resolved once into a typed ``VariantSpec`` (and the preset
registry); ``builder``: networks, loss and optimizers for a spec and a data set; ``presets``: the
built-in presets.  The component registries are re-exported here, where plugins register.
"""

from ..data.base import DataInfo
from ..losses import LOSSES
from ..networks import DISCRIMINATORS, GENERATORS, TRANSLATORS
from . import presets  # noqa: F401  (registers the built-in presets)
from .builder import GAN, build, generator_from_checkpoint, memory_format
from .spec import (ANY_DISCRIMINATOR, MULTI_CONDITIONING, TOP_LEVEL_KEYS, VARIANT_KEYS, VARIANTS, Component,
                   VariantSpec, register_variant, resolve, translation_of)

__all__ = ["DataInfo", "LOSSES", "DISCRIMINATORS", "GENERATORS", "TRANSLATORS", "GAN", "build",
           "generator_from_checkpoint", "memory_format", "ANY_DISCRIMINATOR", "MULTI_CONDITIONING", "TOP_LEVEL_KEYS",
           "VARIANT_KEYS", "VARIANTS", "Component", "VariantSpec", "register_variant", "resolve", "translation_of"]
