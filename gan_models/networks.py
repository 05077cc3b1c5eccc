"""Generator and discriminator architectures.

Every discriminator returns raw logits of shape (B,); the loss decides what they mean
(a probability through a sigmoid for BCE, a critic value for WGAN).  Every network takes its
sizes as arguments: nothing here reads globals or the data set.

Shapes are written (C, H, W) for images and (D,) for points; ``data_shape`` is the shape of
one sample.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn


def _out_activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()  # images live in [-1, 1]
    if name == "identity":
        return nn.Identity()  # unbounded data such as the 2D mixtures
    raise ValueError(f"unknown output activation {name!r}; allowed: tanh, identity")


# ----------------------------------------------------------------------------------------------
# MLPs: the classic GAN on flattened digits (Goodfellow et al. 2014).


class MLPGenerator(nn.Module):
    """z -> [Linear -> LeakyReLU(0.2)] * len(hidden) -> Linear -> out activation -> data_shape."""

    def __init__(self, z_dim: int, data_shape: Sequence[int], hidden: Sequence[int] = (256,),
                 out_activation: str = "tanh", slope: float = 0.2):
        super().__init__()
        self.z_dim = z_dim
        self.data_shape = tuple(data_shape)
        layers: list[nn.Module] = []
        width = z_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        layers += [nn.Linear(width, math.prod(self.data_shape)), _out_activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.data_shape)  # (B, *data_shape)


class MLPDiscriminator(nn.Module):
    """data_shape -> flatten -> [Linear -> LeakyReLU(0.2)] * len(hidden) -> Linear -> logit."""

    def __init__(self, data_shape: Sequence[int], hidden: Sequence[int] = (256,), slope: float = 0.2):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = math.prod(data_shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(slope)]
            width = h
        self.features = nn.Sequential(*layers)  # (B, hidden[-1])
        self.head = nn.Linear(width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).squeeze(1)  # (B,)


# ----------------------------------------------------------------------------------------------
# DCGAN (Radford et al. 2016): transposed convolutions + BatchNorm in G, strided convolutions +
# LeakyReLU in D, no pooling, no fully connected hidden layers.


def dcgan_plan(size: int) -> tuple[int, int]:
    """Return (base, n_doublings) with size == base * 2**n_doublings, base 4 or 7, n >= 1.

    28x28 digits start from 7x7 (7 -> 14 -> 28); 32 and 64 start from 4x4 as in the paper.
    """
    for base in (4, 7):
        n = 0
        s = size
        while s > base and s % 2 == 0:
            s //= 2
            n += 1
        if s == base and n >= 1:
            return base, n
    raise ValueError(
        f"DCGAN cannot make {size}x{size} images: the size must be 4*2^k or 7*2^k with k >= 1 "
        "(8, 14, 16, 28, 32, 56, 64, 128, ...); set data.image_size to one of these")


def _check_square_image(data_shape: Sequence[int], arch: str) -> tuple[int, int]:
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"{arch} needs square images (C, H, H); this data set has samples of shape "
                         f"{tuple(data_shape)}; use the mlp architecture for point data")
    return data_shape[0], data_shape[1]


class DCGANGenerator(nn.Module):
    def __init__(self, z_dim: int, data_shape: Sequence[int], width: int = 64,
                 out_activation: str = "tanh"):
        super().__init__()
        channels, size = _check_square_image(data_shape, "dcgan")
        base, n = dcgan_plan(size)
        self.z_dim = z_dim
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            # z (z_dim x 1 x 1) -> (ch) x base x base
            nn.ConvTranspose2d(z_dim, ch, base, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            # (ch) x s x s -> (ch/2) x 2s x 2s
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        # (width) x size/2 x size/2 -> (channels) x size x size
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), _out_activation(out_activation)]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    def __init__(self, data_shape: Sequence[int], width: int = 64, batchnorm: bool = True):
        super().__init__()
        channels, size = _check_square_image(data_shape, "dcgan")
        base, n = dcgan_plan(size)
        # (channels) x size x size -> (width) x size/2 x size/2; no BatchNorm on the input layer
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        ch = width
        for _ in range(n - 1):
            # (ch) x s x s -> (2ch) x s/2 x s/2
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False)]
            if batchnorm:
                layers += [nn.BatchNorm2d(ch * 2)]
            layers += [nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.features = nn.Sequential(*layers)  # (ch) x base x base
        self.head = nn.Conv2d(ch, 1, base, 1, 0, bias=False)  # -> 1 x 1 x 1
        self.apply(_dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x)).view(-1)  # (B,)


def _dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) weights, BatchNorm gamma ~ N(1, 0.02), as in the DCGAN paper."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)
