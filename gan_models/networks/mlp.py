"""MLPs: the classic GAN on flattened digits (Goodfellow et al. 2014) and on 2D points."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    DISCRIMINATORS,
    GENERATORS,
    Discriminator,
    Heads,
    maybe_spectral_norm,
    out_activation_layer,
    with_labels,
)


class MLPGenerator(nn.Module):
    """z (+ one-hot y) -> [Linear -> LeakyReLU(0.2)] * len(hidden) -> Linear -> out act -> data_shape."""

    def __init__(self, z_dim: int, data_shape: Sequence[int], hidden: Sequence[int] = (256,),
                 out_activation: str = "tanh", n_classes: int = 0, slope: float = 0.2, batchnorm: bool = False):
        super().__init__()
        self.z_dim, self.n_classes = z_dim, n_classes
        self.data_shape = tuple(data_shape)
        layers: list[nn.Module] = []
        width = z_dim + n_classes
        for h in hidden:  # Linear [-> BatchNorm] -> LeakyReLU (slope 0: ReLU)
            layers += [nn.Linear(width, h)] + ([nn.BatchNorm1d(h)] if batchnorm else []) + [nn.LeakyReLU(slope)]
            width = h
        layers += [nn.Linear(width, math.prod(self.data_shape)), out_activation_layer(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(with_labels(z, y, self.n_classes)).view(z.shape[0], *self.data_shape)


class Maxout(nn.Module):
    """Linear to ``out * pieces`` units, then the maximum over each unit's ``pieces`` (Goodfellow
    et al. 2013); the discriminator of the original GAN and of PacGAN's 2D experiments."""

    def __init__(self, cin: int, out: int, pieces: int):
        super().__init__()
        if pieces < 2:
            raise ValueError(f"maxout needs at least 2 pieces, got {pieces}")
        self.out, self.pieces = out, pieces
        self.linear = nn.Linear(cin, out * pieces)

    def forward(self, x):
        return self.linear(x).view(x.shape[0], self.out, self.pieces).amax(-1)


class MLPDiscriminator(Discriminator):
    """data_shape (+ one-hot y) -> flatten -> [Linear -> LeakyReLU(0.2)] * len(hidden) -> logit;
    with ``maxout`` > 1 every hidden layer is a maxout layer of that many pieces instead."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int] = (256,), n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0, slope: float = 0.2, maxout: int = 0):
        super().__init__()
        self.n_classes = n_classes
        layers: list[nn.Module] = []
        width = math.prod(data_shape) + n_classes
        for h in hidden:
            layers += [Maxout(width, h, maxout)] if maxout else [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        self.body = nn.Sequential(*layers)  # (B, hidden[-1])
        self.heads = Heads(width, minibatch_features, aux_classes)

    def forward_all(self, x, y=None):
        h = x.flatten(1)
        if self.n_classes:
            h = torch.cat([h, F.one_hot(y, self.n_classes).to(h.dtype)], 1)
        return self.heads(self.body(h))


def _mlp_generator(z_dim, data_shape, out_activation, n_classes, hidden: list = (256,), batchnorm: bool = False,
                   slope: float = 0.2):
    return MLPGenerator(z_dim, data_shape, hidden=list(hidden), out_activation=out_activation,
                        n_classes=n_classes, batchnorm=batchnorm, slope=slope)


def _mlp_discriminator(data_shape, n_classes, aux_classes, hidden: list = (256,), spectral_norm: bool = False,
                       minibatch_features: int = 0, maxout: int = 0):
    return maybe_spectral_norm(MLPDiscriminator(data_shape, hidden=list(hidden), n_classes=n_classes,
                                                minibatch_features=minibatch_features, aux_classes=aux_classes,
                                                maxout=maxout), spectral_norm)


GENERATORS.register("mlp", _mlp_generator, "MLP: z -> [Linear, LeakyReLU(0.2)]*n -> Linear -> Tanh")
DISCRIMINATORS.register("mlp", _mlp_discriminator, "MLP: flatten -> [Linear, LeakyReLU(0.2)]*n -> logit; "
                        "options: spectral_norm, minibatch_features, maxout (pieces per unit)")
