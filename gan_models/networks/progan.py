"""Progressive growing (Karras et al. 2018)."""

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
    out_activation_layer,
    with_labels,
)

# ----------------------------------------------------------------------------------------------
# Progressive growing (Karras et al. 2018).  The loop stays oblivious: G always returns
# full-size images (its current resolution upsampled) and D average-pools its input down to its
# current resolution, which equals feeding it downsampled real images.  ``set_progress(p)``,
# p in [0, 1] the share of training done, picks the resolution and the fade-in alpha.


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)


def progressive_schedule(p: float, n: int) -> tuple[int, float]:
    """Training split into 2n+1 equal phases: stable at the base size, then for each doubling a
    fade-in phase (alpha 0 -> 1) and a stable phase.  Returns (stage, alpha)."""
    phase = min(int(p * (2 * n + 1)), 2 * n)
    stage = (phase + 1) // 2
    if phase % 2 == 1:  # fading in `stage`
        alpha = p * (2 * n + 1) - phase
        return stage, float(min(max(alpha, 0.0), 1.0))
    return stage, 1.0


class ProGANGenerator(nn.Module):
    def __init__(self, z_dim: int, data_shape: Sequence[int], width: int = 64, out_activation: str = "tanh",
                 n_classes: int = 0):
        super().__init__()
        channels, size = check_square_image(data_shape, "progan")
        self.base, self.n = dcgan_plan(size)
        self.z_dim, self.n_classes, self.size = z_dim, n_classes, size
        chs = [min(width * 2 ** (self.n - i), 512) for i in range(self.n + 1)]  # channels per stage
        self.first = nn.Sequential(nn.Linear(z_dim + n_classes, chs[0] * self.base ** 2))
        self.first_conv = nn.Sequential(nn.LeakyReLU(0.2), PixelNorm(), nn.Conv2d(chs[0], chs[0], 3, 1, 1),
                                        nn.LeakyReLU(0.2), PixelNorm())
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(chs[i], chs[i + 1], 3, 1, 1), nn.LeakyReLU(0.2),
                          PixelNorm(), nn.Conv2d(chs[i + 1], chs[i + 1], 3, 1, 1), nn.LeakyReLU(0.2), PixelNorm())
            for i in range(self.n))
        self.to_rgb = nn.ModuleList(nn.Conv2d(c, channels, 1) for c in chs)
        self.act = out_activation_layer(out_activation)
        self.chs = chs
        self.register_buffer("progress", torch.tensor(1.0))

    def set_progress(self, p: float) -> None:
        self.progress.fill_(float(p))

    def forward(self, z, y=None):
        stage, alpha = progressive_schedule(float(self.progress), self.n)
        h = self.first(with_labels(z, y, self.n_classes)).view(z.shape[0], self.chs[0], self.base, self.base)
        h = self.first_conv(h)
        prev = h
        for i in range(stage):
            prev, h = h, self.blocks[i](h)
        out = self.to_rgb[stage](h)
        if stage > 0 and alpha < 1.0:  # fade in: blend with the upsampled previous resolution
            out = alpha * out + (1 - alpha) * F.interpolate(self.to_rgb[stage - 1](prev), scale_factor=2)
        if stage < self.n:
            out = F.interpolate(out, size=(self.size, self.size))  # nearest: blocks of pixels
        return self.act(out)


class ProGANDiscriminator(Discriminator):
    def __init__(self, data_shape: Sequence[int], width: int = 64, n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0):
        super().__init__()
        channels, size = check_square_image(data_shape, "progan")
        self.base, self.n = dcgan_plan(size)
        if n_classes:
            raise ValueError("progan's discriminator has no label input; use conditioning: auxiliary")
        chs = [min(width * 2 ** (self.n - i), 512) for i in range(self.n + 1)]
        self.from_rgb = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, c, 1), nn.LeakyReLU(0.2)) for c in chs)
        # blocks[i] takes stage i+1's resolution down to stage i's
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(chs[i + 1], chs[i + 1], 3, 1, 1), nn.LeakyReLU(0.2),
                          nn.Conv2d(chs[i + 1], chs[i], 3, 1, 1), nn.LeakyReLU(0.2), nn.AvgPool2d(2))
            for i in range(self.n))
        # +1 channel: minibatch standard deviation (ProGAN sec. 3)
        self.final = nn.Sequential(nn.Conv2d(chs[0] + 1, chs[0], 3, 1, 1), nn.LeakyReLU(0.2), nn.Flatten())
        self.heads = Heads(chs[0] * self.base ** 2, minibatch_features, aux_classes)
        self.register_buffer("progress", torch.tensor(1.0))

    def set_progress(self, p: float) -> None:
        self.progress.fill_(float(p))

    def forward_all(self, x, y=None):
        stage, alpha = progressive_schedule(float(self.progress), self.n)
        res = self.base * 2 ** stage
        x = F.adaptive_avg_pool2d(x, res)
        h = self.from_rgb[stage](x)
        if stage > 0:
            h = self.blocks[stage - 1](h)
            if alpha < 1.0:
                h = alpha * h + (1 - alpha) * self.from_rgb[stage - 1](F.avg_pool2d(x, 2))
        for i in range(stage - 2, -1, -1):
            h = self.blocks[i](h)
        std = h.std(0, unbiased=False).mean().expand(h.shape[0], 1, *h.shape[2:])
        return self.heads(self.final(torch.cat([h, std], 1)))


def _progan_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64):
    return ProGANGenerator(z_dim, data_shape, width=width, out_activation=out_activation, n_classes=n_classes)


def _progan_discriminator(data_shape, n_classes, aux_classes, width: int = 64, minibatch_features: int = 0):
    return ProGANDiscriminator(data_shape, width=width, n_classes=n_classes,
                               minibatch_features=minibatch_features, aux_classes=aux_classes)


GENERATORS.register("progan", _progan_generator, "progressive growing with fade-in, PixelNorm (Karras et al. 2018)")
DISCRIMINATORS.register("progan", _progan_discriminator, "progressive growing mirror of the generator, "
                        "minibatch standard deviation")
