"""Generator and discriminator architectures.

Every generator maps ``(z, y=None) -> x`` and every discriminator maps ``(x, y=None)`` to a dict
``{"logits": (B,), "features": (B, F), "aux": (B, K) or None}`` through ``forward_all``;
``forward`` returns the logits alone.  ``y`` are integer class labels, used by conditional
networks (``n_classes > 0``) and ignored otherwise.  The loss decides what logits mean (a
probability through a sigmoid for BCE, a critic value for WGAN).  Every network takes its sizes
as arguments: nothing here reads globals or the data set.

Shapes are written (C, H, W) for images and (D,) for points; ``data_shape`` is one sample's.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _out_activation(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()  # images live in [-1, 1]
    if name == "identity":
        return nn.Identity()  # unbounded data such as the 2D mixtures
    raise ValueError(f"unknown output activation {name!r}; allowed: tanh, identity")


def _with_labels(z: torch.Tensor, y: torch.Tensor | None, n_classes: int) -> torch.Tensor:
    """Concatenate one-hot labels to noise (Mirza & Osindero 2014: G gets noise + label)."""
    if not n_classes:
        return z
    if y is None:
        raise ValueError("this generator is conditional: pass class labels y")
    return torch.cat([z, F.one_hot(y, n_classes).to(z.dtype)], 1)


class Discriminator(nn.Module):
    """Base: subclasses implement ``forward_all``."""

    def forward_all(self, x: torch.Tensor, y: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, y)["logits"]


class _Heads(nn.Module):
    """Minibatch discrimination (optional) on the features, then the real/fake logit and an
    optional auxiliary classifier (ACGAN)."""

    def __init__(self, width: int, minibatch_features: int = 0, aux_classes: int = 0):
        super().__init__()
        self.mbd = MinibatchDiscrimination(width, minibatch_features) if minibatch_features else None
        out = width + minibatch_features
        self.logit = nn.Linear(out, 1)
        self.aux = nn.Linear(out, aux_classes) if aux_classes else None

    def forward(self, feats: torch.Tensor) -> dict[str, torch.Tensor | None]:
        h = self.mbd(feats) if self.mbd is not None else feats
        return {"logits": self.logit(h).squeeze(1), "features": feats,
                "aux": self.aux(h) if self.aux is not None else None}


class MinibatchDiscrimination(nn.Module):
    """Salimans et al. 2016, sec. 3.2: features f (N, A) -> M = f T (N, B, C);
    o(x_i)_b = sum_{j != i} exp(-||M_i,b - M_j,b||_1); returns [f, o] (N, A + B)."""

    def __init__(self, in_features: int, out_features: int, kernel_dims: int = 16):
        super().__init__()
        self.out_features, self.kernel_dims = out_features, kernel_dims
        self.T = nn.Parameter(torch.randn(in_features, out_features * kernel_dims) * 0.1)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.out_features, self.kernel_dims)  # (N, B, C)
        l1 = (m.unsqueeze(0) - m.unsqueeze(1)).abs().sum(3)  # (N, N, B)
        o = torch.exp(-l1).sum(1) - 1.0  # minus exp(0) of the sample with itself
        return torch.cat([f, o], 1)


# ----------------------------------------------------------------------------------------------
# MLPs: the classic GAN on flattened digits (Goodfellow et al. 2014).


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
        layers += [nn.Linear(width, math.prod(self.data_shape)), _out_activation(out_activation)]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(_with_labels(z, y, self.n_classes)).view(z.shape[0], *self.data_shape)


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
        self.heads = _Heads(width, minibatch_features, aux_classes)

    def forward_all(self, x, y=None):
        h = x.flatten(1)
        if self.n_classes:
            h = torch.cat([h, F.one_hot(y, self.n_classes).to(h.dtype)], 1)
        return self.heads(self.body(h))


# ----------------------------------------------------------------------------------------------
# Convolutional networks share one size plan: images of base * 2**n pixels, base 4 or 7.


def dcgan_plan(size: int) -> tuple[int, int]:
    """Return (base, n_doublings) with size == base * 2**n_doublings, base 4 or 7, n >= 1.

    28x28 digits start from 7x7 (7 -> 14 -> 28); 32 and 64 start from 4x4 as in DCGAN.
    """
    for base in (4, 7):
        n, s = 0, size
        while s > base and s % 2 == 0:
            s //= 2
            n += 1
        if s == base and n >= 1:
            return base, n
    raise ValueError(
        f"the convolutional networks cannot make {size}x{size} images: the size must be 4*2^k or 7*2^k "
        "with k >= 1 (8, 14, 16, 28, 32, 56, 64, 128, ...); set prepare.image_size to one of these")


def _check_square_image(data_shape: Sequence[int], arch: str) -> tuple[int, int]:
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"{arch} needs square images (C, H, H); this data set has samples of shape "
                         f"{tuple(data_shape)}; use the mlp architecture for point data")
    return data_shape[0], data_shape[1]


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
        channels, size = _check_square_image(data_shape, "dcgan")
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
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), _out_activation(out_activation)]
        self.net = nn.Sequential(*layers)
        self.apply(_dcgan_init)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = _with_labels(z, y, self.n_classes)
        return self.net(h.view(h.shape[0], -1, 1, 1))


class DCGANDiscriminator(Discriminator):
    """Strided convolutions + BatchNorm + LeakyReLU(0.2); labels enter as one-hot input planes."""

    def __init__(self, data_shape: Sequence[int], width: int = 64, batchnorm: bool = True, n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0, self_attention: bool = False):
        super().__init__()
        channels, size = _check_square_image(data_shape, "dcgan")
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
        self.heads = _Heads(ch * base * base, minibatch_features, aux_classes)
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


# ----------------------------------------------------------------------------------------------
# Residual networks (the SNGAN / WGAN-GP ResNet layout), G with dropout in every block.


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
        channels, size = _check_square_image(data_shape, "resnet")
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
                                 _out_activation(out_activation))

    def forward(self, z, y=None):
        h = self.fc(_with_labels(z, y, self.n_classes)).view(z.shape[0], self.ch, self.base, self.base)
        return self.out(self.blocks(h))


class ResNetDiscriminator(Discriminator):
    def __init__(self, data_shape: Sequence[int], width: int = 64, n_classes: int = 0,
                 minibatch_features: int = 0, aux_classes: int = 0):
        super().__init__()
        channels, size = _check_square_image(data_shape, "resnet")
        base, n = dcgan_plan(size)
        self.n_classes = n_classes
        blocks, cin, ch = [], channels + n_classes, width
        for i in range(n):  # each block halves the size
            blocks.append(_ResDown(cin, ch, pre_activation=i > 0))
            cin, ch = ch, ch * 2
        self.body = nn.Sequential(*blocks, nn.ReLU())
        self.heads = _Heads(cin, minibatch_features, aux_classes)

    def forward_all(self, x, y=None):
        if self.n_classes:
            planes = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        return self.heads(self.body(x).sum((2, 3)))  # global sum pooling


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
        channels, size = _check_square_image(data_shape, "progan")
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
        self.act = _out_activation(out_activation)
        self.chs = chs
        self.register_buffer("progress", torch.tensor(1.0))

    def set_progress(self, p: float) -> None:
        self.progress.fill_(float(p))

    def forward(self, z, y=None):
        stage, alpha = progressive_schedule(float(self.progress), self.n)
        h = self.first(_with_labels(z, y, self.n_classes)).view(z.shape[0], self.chs[0], self.base, self.base)
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
        channels, size = _check_square_image(data_shape, "progan")
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
        self.heads = _Heads(chs[0] * self.base ** 2, minibatch_features, aux_classes)
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


# ----------------------------------------------------------------------------------------------
# PacGAN (Lin et al. 2018): D judges m samples at once.


class Packed(Discriminator):
    """Wraps a discriminator built for ``m`` samples concatenated along channels (images) or
    features (points): (B, *shape) -> (B/m, m*C, ...) -> logits (B/m,)."""

    def __init__(self, inner: Discriminator, m: int):
        super().__init__()
        self.inner, self.m = inner, m

    def forward_all(self, x, y=None):
        if x.shape[0] % self.m:
            raise ValueError(f"PacGAN packs {self.m} samples: the batch size must be a multiple of {self.m}")
        b = x.shape[0] // self.m
        # sample i*m + j goes to pack i, slot j
        packed = x.reshape(b, self.m, *x.shape[1:]).flatten(1, 2)
        return self.inner.forward_all(packed)


class MultiScale(Discriminator):
    """pix2pixHD's multi-scale discriminator (Wang et al. 2018): the same architecture, separate
    weights, at full, half, quarter ... resolution (each scale 3x3 average-pooled with stride 2
    from the one before, padding not counted: 28 -> 14 -> 7).

    The per-sample logits of the scales come out side by side, (B, scales), so every loss, being
    a mean over its logits, is the mean of the per-scale losses; the features are concatenated and
    an auxiliary head's logits averaged.  ``build(shape)`` makes one scale's network."""

    def __init__(self, build: Callable[[tuple[int, ...]], Discriminator], data_shape: Sequence[int], scales: int):
        super().__init__()
        if scales < 1:
            raise ValueError(f"discriminator.scales must be >= 1, got {scales}")
        if len(data_shape) != 3:
            raise ValueError(f"discriminator.scales needs images (C, H, W), got shape {tuple(data_shape)}")
        c, h, w = data_shape
        self.shapes = []
        for _ in range(scales):
            self.shapes.append((c, h, w))
            h, w = -(-h // 2), -(-w // 2)
        self.nets = nn.ModuleList(build(s) for s in self.shapes)

    def forward_all(self, x, y=None):
        outs = []
        for k, net in enumerate(self.nets):
            if k:  # (C, H, W) -> (C, ceil(H/2), ceil(W/2))
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out = net.forward_all(x, y)
            if out["logits"].dim() != 1:
                raise ValueError(f"discriminator.scales needs one logit per sample; scale {k} gives logits of shape "
                                 f"{tuple(out['logits'].shape)}")
            outs.append(out)
        aux = [o["aux"] for o in outs]
        return {"logits": torch.stack([o["logits"] for o in outs], 1),
                "features": torch.cat([o["features"] for o in outs], 1),
                "aux": torch.stack(aux).mean(0) if aux[0] is not None else None}
