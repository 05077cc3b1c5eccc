"""A compact StyleGAN2 (Karras et al. 2020) in plain PyTorch: no custom CUDA ops, runs on the CPU.

Generator: a mapping network (pixel norm on z, ``mapping_depth`` fully connected layers with a
learning-rate multiplier of 0.01) turns z (and, for a conditional G, an embedded label) into a
style vector w; a learned 4x4 constant goes through modulated 3x3 convolutions with weight
demodulation, each followed by per-pixel noise with a learned per-channel scale, bias and
leaky ReLU, doubling the resolution (bilinear up-sampling before the convolution, not
StyleGAN2's FIR filter) up to the next power of two >= the data size; "skip" outputs: every
resolution adds its own 1x1 modulated to-image output to the up-sampled sum of the ones before.
An image data size that is not a power of two of at least 16 (28; scikit-learn's 8 px digits) is
drawn at the next one (32; 16) and its centre cropped; the discriminator pads its input back
with the edge pixels.

Every style consumer (a convolution, or a to-image layer) reads one row of ``ws`` (B, num_ws,
w_dim), in StyleGAN2's order: the convolutions take rows 0, 1, 2, ...; a resolution's to-image
layer takes the row after its last convolution.  During training, with probability
``mixing_prob`` a batch mixes styles: rows from a random cutoff on come from a second z
(style-mixing regularisation).  ``w_avg`` tracks the mean w (decay 0.995 per training call);
``truncation_psi`` < 1 pulls every w towards it (w_avg + psi (w - w_avg)).

Noise: fresh Gaussian noise in training; in eval mode a fixed noise image per layer (a buffer
drawn from a seeded generator), so that sampling is a function of z alone (StyleGAN2's
``noise_mode='const'``).

Discriminator: StyleGAN2's residual D: from-image 1x1, blocks of two 3x3 convolutions with a
1x1 skip, down-sampled by 2x2 average pooling, (main + skip) / sqrt(2); at 4x4 the minibatch
standard deviation (groups of up to 4 samples, one feature) is appended, then a 3x3
convolution and two fully connected layers.  All layers use equalised learning rate (weights
drawn N(0, 1), scaled by 1 / sqrt(fan_in) at run time) and leaky ReLU 0.2 scaled by sqrt(2).

Loss, lazy R1, EMA and its ramp-up live where they do for every variant (``losses``,
``training``); the ``stylegan`` preset composes them.  Path-length regularisation is not
implemented.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import DISCRIMINATORS, GENERATORS, Discriminator

GAIN = math.sqrt(2.0)  # leaky ReLU's gain: activations keep unit variance


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, demodulate: bool = True,
                     padding: int = 0, eps: float = 1e-8) -> torch.Tensor:
    """StyleGAN2's modulated convolution: sample b convolved with the weight
    ``w[o, i, :, :] * s[b, i]``, divided (``demodulate``) per output channel o by
    ``sqrt(sum_{i,k,l} (w[o, i, k, l] s[b, i])^2 + eps)``.

    Computed as StyleGAN2's non-fused path: the styles scale the input channels, one ordinary
    convolution with the shared weight, the demodulation coefficients scale the output channels
    (the same sums; a grouped convolution with per-sample weights is 3-4x slower on the CPU).
    x: (B, I, H, W); weight: (O, I, k, k); styles: (B, I)."""
    out = F.conv2d(x * styles[:, :, None, None], weight, padding=padding)
    if demodulate:
        d = torch.rsqrt(styles.pow(2) @ weight.pow(2).sum(dim=(2, 3)).t() + eps)  # (B, O)
        out = out * d[:, :, None, None]
    return out


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate and a learning-rate multiplier
    (weights N(0, 1/lr_mul^2), used scaled by lr_mul / sqrt(fan_in); bias scaled by lr_mul)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, activate: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin) / lr_mul)
        self.bias = nn.Parameter(torch.full((cout,), float(bias_init) / lr_mul))
        self.scale, self.lr_mul, self.activate = lr_mul / math.sqrt(cin), lr_mul, activate

    def forward(self, x):
        out = F.linear(x, self.weight * self.scale, self.bias * self.lr_mul)
        return F.leaky_relu(out, 0.2) * GAIN if self.activate else out


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate; ``activate`` adds leaky ReLU 0.2 x sqrt(2)."""

    def __init__(self, cin: int, cout: int, k: int, bias: bool = True, activate: bool = True):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(cout, cin, k, k))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None
        self.scale, self.pad, self.activate = 1 / math.sqrt(cin * k * k), k // 2, activate

    def forward(self, x):
        out = F.conv2d(x, self.weight * self.scale, self.bias, padding=self.pad)
        return F.leaky_relu(out, 0.2) * GAIN if self.activate else out


class MappingNetwork(nn.Module):
    """z (pixel-normalised; with an embedded, normalised label for a conditional G) -> w."""

    def __init__(self, z_dim: int, w_dim: int, depth: int, lr_mul: float = 0.01, n_classes: int = 0):
        super().__init__()
        self.n_classes = n_classes
        self.embed = EqualLinear(n_classes, z_dim) if n_classes else None
        dims = [z_dim * (2 if n_classes else 1)] + [w_dim] * depth
        self.layers = nn.Sequential(*[EqualLinear(a, b, lr_mul=lr_mul, activate=True) for a, b in zip(dims, dims[1:])])

    @staticmethod
    def _norm(x):
        return x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + 1e-8)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self._norm(z)
        if self.embed is not None:
            if y is None:
                raise ValueError("this generator is conditional: pass class labels y")
            h = torch.cat([h, self._norm(self.embed(F.one_hot(y, self.n_classes).to(z.dtype)))], 1)
        return self.layers(h)


class StyleLayer(nn.Module):
    """[up-sample x2] -> modulated 3x3 conv (demodulated) -> + noise x per-channel scale -> + bias -> lrelu."""

    def __init__(self, cin: int, cout: int, w_dim: int, size: int, up: bool, noise_seed: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)  # styles start at 1: the plain convolution
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(1, cout, 1, 1))
        self.register_buffer("noise_const", torch.randn(1, 1, size, size, generator=torch.Generator().manual_seed(
            noise_seed)))
        self.scale, self.up = 1 / math.sqrt(cin * 9), up

    def forward(self, x, w):
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = modulated_conv2d(x, self.weight * self.scale, self.affine(w), demodulate=True, padding=1)
        noise = (torch.randn(x.shape[0], 1, *x.shape[2:], device=x.device, dtype=x.dtype) if self.training
                 else self.noise_const)
        return F.leaky_relu(x + noise * self.noise_strength + self.bias[None, :, None, None], 0.2) * GAIN


class ToImage(nn.Module):
    """Modulated 1x1 convolution to the image channels, not demodulated, plus a bias."""

    def __init__(self, cin: int, channels: int, w_dim: int):
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.scale = 1 / math.sqrt(cin)

    def forward(self, x, w):
        return modulated_conv2d(x, self.weight, self.affine(w) * self.scale, demodulate=False) + self.bias[
            None, :, None, None]


def _plan(data_shape: Sequence[int], min_size: int = 16) -> tuple[int, int, int]:
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"stylegan needs square images (C, S, S), got shape {tuple(data_shape)}")
    channels, size = int(data_shape[0]), int(data_shape[1])
    if size < 4:
        raise ValueError(f"stylegan draws powers of two from {min_size} px up and crops; {size} px is too small")
    res = max(min_size, 1 << (size - 1).bit_length())
    return channels, size, res


def _channels(res: int, top: int, width: int, max_width: int) -> int:
    """Channels at resolution ``res``: ``width`` at the top resolution, doubling per halving, capped."""
    return min(max_width, width * (top // res))


class StyleGenerator(nn.Module):
    def __init__(self, z_dim: int, data_shape: Sequence[int], out_activation: str = "tanh", n_classes: int = 0,
                 width: int = 16, max_width: int = 64, w_dim: int = 128, mapping_depth: int = 2,
                 mapping_lr_mul: float = 0.01, mixing_prob: float = 0.9, truncation_psi: float = 1.0,
                 w_avg_beta: float = 0.995):
        super().__init__()
        if not 0 <= mixing_prob <= 1:
            raise ValueError(f"stylegan: mixing_prob must be in [0, 1], got {mixing_prob}")
        self.channels, self.size, self.res = _plan(data_shape)
        self.z_dim, self.n_classes, self.w_dim = z_dim, n_classes, w_dim
        self.mixing_prob, self.truncation_psi, self.w_avg_beta = mixing_prob, truncation_psi, w_avg_beta
        self.out_activation = out_activation
        self.fixed_tail = 0  # columns of z that style mixing keeps (a multi-input G's condition)
        self.mapping = MappingNetwork(z_dim, w_dim, mapping_depth, mapping_lr_mul, n_classes)
        self.register_buffer("w_avg", torch.zeros(w_dim))
        top = self.res
        c4 = _channels(4, top, width, max_width)
        self.const = nn.Parameter(torch.randn(1, c4, 4, 4))
        self.convs = nn.ModuleList([StyleLayer(c4, c4, w_dim, 4, up=False, noise_seed=0)])
        self.to_images = nn.ModuleList([ToImage(c4, self.channels, w_dim)])
        # which row of ws each consumer reads: convolution k reads k; to-image r the row after its last conv
        self.rgb_rows = [1]
        res, cin = 8, c4
        while res <= top:
            cout = _channels(res, top, width, max_width)
            self.convs.append(StyleLayer(cin, cout, w_dim, res, up=True, noise_seed=len(self.convs)))
            self.convs.append(StyleLayer(cout, cout, w_dim, res, up=False, noise_seed=len(self.convs)))
            self.to_images.append(ToImage(cout, self.channels, w_dim))
            self.rgb_rows.append(len(self.convs))
            res, cin = res * 2, cout
        self.num_ws = len(self.convs) + 1

    def mapping_ws(self, z: torch.Tensor, y: torch.Tensor | None = None, psi: float | None = None) -> torch.Tensor:
        """(B, num_ws, w_dim): w broadcast to every row, truncated towards ``w_avg`` by ``psi``
        (default ``truncation_psi``)."""
        w = self.mapping(z, y)
        psi = self.truncation_psi if psi is None else psi
        if psi != 1:
            w = self.w_avg.lerp(w, psi)
        return w[:, None].expand(-1, self.num_ws, -1)

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """Image from styles ``ws`` (B, num_ws, w_dim), cropped to the data size."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        img = None
        ci = 0
        for r, to_image in enumerate(self.to_images):
            for _ in range(1 if r == 0 else 2):
                x = self.convs[ci](x, ws[:, ci])
                ci += 1
            y = to_image(x, ws[:, self.rgb_rows[r]])
            img = y if img is None else F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False) + y
        if self.size != self.res:
            o = (self.res - self.size) // 2
            img = img[:, :, o:o + self.size, o:o + self.size]
        return torch.tanh(img) if self.out_activation == "tanh" else img

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.training:
            w = self.mapping(z, y)
            with torch.no_grad():  # the tracked average of w, for truncation
                self.w_avg.copy_(w.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))
            ws = w[:, None].repeat(1, self.num_ws, 1)
            if self.mixing_prob and torch.rand(()) < self.mixing_prob:
                cutoff = int(torch.randint(1, self.num_ws, ()))
                z2 = torch.randn_like(z)
                if self.fixed_tail:  # a multi-input G's fused condition sits in the last columns: keep it
                    z2[:, -self.fixed_tail:] = z[:, -self.fixed_tail:]
                ws[:, cutoff:] = self.mapping(z2, y)[:, None]
            return self.synthesis(ws)
        return self.synthesis(self.mapping_ws(z, y))


class MinibatchStd(nn.Module):
    """Appends the standard deviation over groups of up to ``group`` samples, averaged over
    channels and pixels, as one more feature map (Karras et al. 2018)."""

    def __init__(self, group: int = 4):
        super().__init__()
        self.group = group

    def forward(self, x):
        b, c, h, w = x.shape
        g = next(k for k in range(min(self.group, b), 0, -1) if b % k == 0)
        y = x.reshape(g, b // g, c, h, w)
        y = (y - y.mean(0)).pow(2).mean(0).add(1e-8).sqrt()  # (b/g, c, h, w)
        y = y.mean(dim=(1, 2, 3)).reshape(-1, 1, 1, 1).repeat(g, 1, h, w)  # sample n sits in group n % (b/g)
        return torch.cat([x, y], 1)


class _DBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, activate=False)

    def forward(self, x):
        skip = self.skip(F.avg_pool2d(x, 2))
        x = F.avg_pool2d(self.conv1(self.conv0(x)), 2)
        return (x + skip) / math.sqrt(2)


class StyleDiscriminator(Discriminator):
    def __init__(self, data_shape: Sequence[int], n_classes: int = 0, aux_classes: int = 0, width: int = 16,
                 max_width: int = 64, mbstd_group: int = 4):
        super().__init__()
        channels, self.size, self.res = _plan(data_shape)
        self.n_classes = n_classes
        top = self.res
        self.from_image = EqualConv2d(channels + n_classes, _channels(top, top, width, max_width), 1)
        blocks, res = [], top
        while res > 4:
            blocks.append(_DBlock(_channels(res, top, width, max_width), _channels(res // 2, top, width, max_width)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        c4 = _channels(4, top, width, max_width)
        self.mbstd = MinibatchStd(mbstd_group)
        self.conv = EqualConv2d(c4 + 1, c4, 3)
        self.fc = EqualLinear(c4 * 16, c4, activate=True)
        self.out = EqualLinear(c4, 1)
        self.aux = EqualLinear(c4, aux_classes) if aux_classes else None

    def forward_all(self, x, y=None):
        if self.size != self.res:  # 28 -> 32: the edge pixels repeated
            p = (self.res - self.size) // 2
            x = F.pad(x, (p, self.res - self.size - p, p, self.res - self.size - p), mode="replicate")
        if self.n_classes:
            planes = F.one_hot(y, self.n_classes).to(x.dtype)[:, :, None, None].expand(-1, -1, *x.shape[2:])
            x = torch.cat([x, planes], 1)
        h = self.blocks(self.from_image(x))
        feats = self.fc(self.conv(self.mbstd(h)).flatten(1))
        return {"logits": self.out(feats).squeeze(1), "features": feats,
                "aux": self.aux(feats) if self.aux is not None else None}


GENERATORS.register("stylegan", StyleGenerator,
                    "StyleGAN2: mapping network (lr x 0.01), constant input, modulated + demodulated convolutions, "
                    "per-layer noise, skip outputs, style mixing, truncation (options: width, max_width, w_dim, "
                    "mapping_depth, mixing_prob, truncation_psi); 28 px drawn at 32 and centre-cropped")
DISCRIMINATORS.register("stylegan", StyleDiscriminator,
                        "StyleGAN2's residual D with minibatch standard deviation, equalised learning rate "
                        "(options: width, max_width, mbstd_group); 28 px padded to 32 with its edge pixels")
