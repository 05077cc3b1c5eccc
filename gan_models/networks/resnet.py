"""Residual networks (the SNGAN / WGAN-GP ResNet layout), G with dropout in every block."""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import (
    DISCRIMINATORS,
    GENERATORS,
    Discriminator,
    Heads,
    check_square_image,
    dcgan_plan,
    maybe_spectral_norm,
    out_activation_layer,
    with_labels,
)


class _ResUp(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float):
        super().__init__()
        self.main = nn.Sequential(
            nn.BatchNorm2d(cin), nn.ReLU(True), nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 3, 1, 1),
            nn.BatchNorm2d(cout), nn.ReLU(True), nn.Dropout(dropout), nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(cin, cout, 1))

    def forward(self, x):
        return self.main(x) + self.skip(x)


class _ResDown(nn.Module):
    def __init__(self, cin: int, cout: int, pre_activation: bool = True):
        super().__init__()
        self.main = nn.Sequential(
            nn.ReLU() if pre_activation else nn.Identity(), nn.Conv2d(cin, cout, 3, 1, 1), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, 1, 1), nn.AvgPool2d(2))
        self.skip = nn.Sequential(nn.Conv2d(cin, cout, 1), nn.AvgPool2d(2))

    def forward(self, x):
        return self.main(x) + self.skip(x)


class ResNetGenerator(nn.Module):
    def __init__(self, z_dim: int, data_shape: Sequence[int], width: int = 64, dropout: float = 0.3,
                 out_activation: str = "tanh", n_classes: int = 0):
        super().__init__()
        channels, size = check_square_image(data_shape, "resnet")
        base, n = dcgan_plan(size)
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"generator dropout must be in [0, 1), got {dropout}")
        self.z_dim, self.n_classes, self.base, self.ch = z_dim, n_classes, base, width * 2 ** (n - 1)
        self.fc = nn.Linear(z_dim + n_classes, self.ch * base * base)  # -> (ch) x base x base
        blocks, ch = [], self.ch
        for _ in range(n):  # each block doubles the size; channels halve down to `width`
            blocks.append(_ResUp(ch, max(width, ch // 2), dropout))
            ch = max(width, ch // 2)
        self.blocks = nn.Sequential(*blocks)
        self.out = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(True), nn.Conv2d(ch, channels, 3, 1, 1),
                                 out_activation_layer(out_activation))

    def forward(self, z, y=None):
        h = self.fc(with_labels(z, y, self.n_classes)).view(z.shape[0], self.ch, self.base, self.base)
        return self.out(self.blocks(h))


class ResNetDiscriminator(Discriminator):
    def __init__(self, data_shape: Sequence[int], width: int = 64, n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0):
        super().__init__()
        channels, size = check_square_image(data_shape, "resnet")
        base, n = dcgan_plan(size)
        self.n_classes = n_classes
        blocks, cin, ch = [], channels + n_classes, width
        for i in range(n):  # each block halves the size
            blocks.append(_ResDown(cin, ch, pre_activation=i > 0))
            cin, ch = ch, ch * 2
        self.body = nn.Sequential(*blocks, nn.ReLU())
        self.heads = Heads(cin, minibatch_features, aux_classes)

    def forward_all(self, x, y=None):
        if self.n_classes:
            planes = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        return self.heads(self.body(x).sum((2, 3)))  # global sum pooling


def _resnet_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64, dropout: float = 0.3):
    return ResNetGenerator(z_dim, data_shape, width=width, dropout=dropout, out_activation=out_activation,
                           n_classes=n_classes)


def _resnet_discriminator(data_shape, n_classes, aux_classes, width: int = 64, spectral_norm: bool = False,
                          minibatch_features: int = 0):
    return maybe_spectral_norm(ResNetDiscriminator(data_shape, width=width, n_classes=n_classes,
                                                   minibatch_features=minibatch_features, aux_classes=aux_classes),
                                                   spectral_norm)


GENERATORS.register("resnet", _resnet_generator, "residual up-sampling blocks with BatchNorm and dropout")
DISCRIMINATORS.register("resnet", _resnet_discriminator, "residual down-sampling blocks, global sum pooling")
