"""DCGAN (Radford et al. 2016): transposed-convolution G, strided-convolution D, optional
self-attention (SAGAN, Zhang et al. 2019)."""

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


class SelfAttention(nn.Module):
    """SAGAN (Zhang et al. 2019): o = softmax(f(x)^T g(x)) over positions applied to h(x);
    returns x + gamma * o with gamma starting at 0."""

    def __init__(self, ch: int):
        super().__init__()
        self.f = nn.Conv2d(ch, max(1, ch // 8), 1)
        self.g = nn.Conv2d(ch, max(1, ch // 8), 1)
        self.h = nn.Conv2d(ch, ch, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = x.shape
        f = self.f(x).flatten(2)  # (B, C/8, N)
        g = self.g(x).flatten(2)  # (B, C/8, N)
        attn = torch.softmax(f.transpose(1, 2) @ g, dim=1)  # (B, N, N): column j attends over i
        o = (self.h(x).flatten(2) @ attn).view(b, c, hh, ww)
        return x + self.gamma * o


class DCGANGenerator(nn.Module):
    """Radford et al. 2016: transposed convolutions + BatchNorm + ReLU, Tanh out."""

    def __init__(self, z_dim: int, data_shape: Sequence[int], width: int = 64, out_activation: str = "tanh",
                 n_classes: int = 0, self_attention: bool = False):
        super().__init__()
        channels, size = check_square_image(data_shape, "dcgan")
        base, n = dcgan_plan(size)
        self.z_dim, self.n_classes = z_dim, n_classes
        ch = width * 2 ** (n - 1)
        layers: list[nn.Module] = [
            # z (+ labels) x 1 x 1 -> (ch) x base x base
            nn.ConvTranspose2d(z_dim + n_classes, ch, base, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            # (ch) x s x s -> (ch/2) x 2s x 2s
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        if self_attention:
            layers.append(SelfAttention(ch))  # at size/2, before the output layer
        # (width) x size/2 x size/2 -> (channels) x size x size
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), out_activation_layer(out_activation)]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = with_labels(z, y, self.n_classes)
        return self.net(h.view(h.shape[0], -1, 1, 1))


class DCGANDiscriminator(Discriminator):
    """Strided convolutions + BatchNorm + LeakyReLU(0.2); labels enter as one-hot input planes."""

    def __init__(self, data_shape: Sequence[int], width: int = 64, batchnorm: bool = True, n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0, self_attention: bool = False):
        super().__init__()
        channels, size = check_square_image(data_shape, "dcgan")
        base, n = dcgan_plan(size)
        self.n_classes = n_classes
        # (channels + labels) x size x size -> (width) x size/2 x size/2; no BatchNorm on the input layer
        layers: list[nn.Module] = [nn.Conv2d(channels + n_classes, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, True)]
        if self_attention:
            layers.append(SelfAttention(width))
        ch = width
        for _ in range(n - 1):
            # (ch) x s x s -> (2ch) x s/2 x s/2
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False))
            if batchnorm:
                layers.append(nn.BatchNorm2d(ch * 2))
            layers.append(nn.LeakyReLU(0.2, True))
            ch *= 2
        layers += [nn.Flatten()]  # (ch * base * base)
        self.body = nn.Sequential(*layers)
        self.heads = Heads(ch * base * base, minibatch_features, aux_classes)
        self.apply(_dcgan_init)

    def forward_all(self, x, y=None):
        if self.n_classes:
            planes = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        return self.heads(self.body(x))


def _dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) weights, BatchNorm gamma ~ N(1, 0.02), as in the DCGAN paper."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _dcgan_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64, self_attention: bool = False,
                     spectral_norm: bool = False):
    return maybe_spectral_norm(DCGANGenerator(z_dim, data_shape, width=width, out_activation=out_activation,
                                              n_classes=n_classes, self_attention=self_attention), spectral_norm)


def _dcgan_discriminator(data_shape, n_classes, aux_classes, width: int = 64, batchnorm: bool = True,
                         spectral_norm: bool = False, self_attention: bool = False, minibatch_features: int = 0):
    return maybe_spectral_norm(DCGANDiscriminator(data_shape, width=width, batchnorm=batchnorm, n_classes=n_classes,
                                                  minibatch_features=minibatch_features, aux_classes=aux_classes,
                                                  self_attention=self_attention), spectral_norm)


GENERATORS.register("dcgan", _dcgan_generator, "transposed convolutions + BatchNorm + ReLU (Radford et al. 2016); "
                    "options: self_attention, spectral_norm")
DISCRIMINATORS.register("dcgan", _dcgan_discriminator, "strided convolutions + BatchNorm + LeakyReLU(0.2); options: "
                        "batchnorm, spectral_norm, self_attention, minibatch_features")
