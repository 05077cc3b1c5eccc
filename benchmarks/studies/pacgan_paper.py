"""PacGAN's 2D networks as a plugin for the pacgan_grid study (``pacgan_grid.yaml``).

The authors' code (fjxmlzn/PacGAN, synthetic_data_experiments/2DGrid_GAN&PacGAN) initialises
every linear layer with N(0, 0.02) weights and zero biases; the built-in MLPs keep PyTorch's
default initialisation.  This registers ``mlp_paper`` generator and discriminator: the built-in
MLPs (BatchNorm, ReLU and maxout are their options), re-initialised that way.  Everything else
of the paper's setting is plain settings in the params file.
"""

from __future__ import annotations

import torch

from gan_models.networks.mlp import _mlp_discriminator, _mlp_generator
from gan_models.variants import DISCRIMINATORS, GENERATORS


def _paper_init(net: torch.nn.Module) -> torch.nn.Module:
    for m in net.modules():
        if isinstance(m, torch.nn.Linear):
            torch.nn.init.normal_(m.weight, 0.0, 0.02)
            torch.nn.init.zeros_(m.bias)
    return net


def _generator(z_dim, data_shape, out_activation, n_classes, hidden: list = (400, 400, 400, 400),
               batchnorm: bool = True, slope: float = 0.0):
    return _paper_init(_mlp_generator(z_dim, data_shape, out_activation, n_classes, hidden=hidden,
                                      batchnorm=batchnorm, slope=slope))


def _discriminator(data_shape, n_classes, aux_classes, hidden: list = (200, 200, 200), maxout: int = 5):
    return _paper_init(_mlp_discriminator(data_shape, n_classes, aux_classes, hidden=hidden, maxout=maxout))


GENERATORS.register("mlp_paper", _generator, "PacGAN's 2D generator: MLP 4 x 400, BatchNorm + ReLU, N(0, 0.02) "
                    "weights, zero biases")
DISCRIMINATORS.register("mlp_paper", _discriminator, "PacGAN's 2D discriminator: 3 x 200 maxout units of 5 "
                        "pieces, N(0, 0.02) weights, zero biases")
