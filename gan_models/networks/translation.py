"""Image-to-image translation networks: pix2pix's U-Net and PatchGAN, CycleGAN's ResNet-block
generator, and the pairs CycleGAN trains.

A translator maps ``(x, y=None) -> image`` like every generator of the project (``y`` is
ignored), but ``x`` is an input image of ``source_shape`` and the output has ``data_shape``; the
two share the spatial size, channels may differ (an edge map to an RGB photo).  Sizes that the
down-sampling does not divide (28 px digits into a U-Net that halves down to 1x1) are padded
inside the network (replicate) and the output cropped back, so callers always see their own size.
The objectives are in ``gan_models.losses`` (``Pix2PixLoss``, ``CycleGANLoss``).
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import DISCRIMINATORS, TRANSLATORS, Discriminator, out_activation_layer


def init_weights(module: nn.Module) -> None:
    """N(0, 0.02) conv weights, zero biases, norm scales N(1, 0.02): both papers' code."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _square(shape: Sequence[int], what: str) -> tuple[int, int]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ValueError(f"{what} needs square images (C, S, S), got shape {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _same_size(source_shape, data_shape, what: str) -> tuple[int, int, int]:
    ca, sa = _square(source_shape, what)
    cb, sb = _square(data_shape, what)
    if sa != sb:
        raise ValueError(f"{what}: input {tuple(source_shape)} and output {tuple(data_shape)} must have the same "
                         "size (set prepare.image_size to resize both)")
    return ca, cb, sa


def _pad_to(x: torch.Tensor, size: int) -> torch.Tensor:
    extra = size - x.shape[-1]
    if extra == 0:
        return x
    lo = extra // 2
    return F.pad(x, (lo, extra - lo, lo, extra - lo), mode="replicate")


def _crop(x: torch.Tensor, size: int) -> torch.Tensor:
    lo = (x.shape[-1] - size) // 2
    return x[..., lo:lo + size, lo:lo + size]


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm must be batch, instance or none, got {kind!r}")


class UNetGenerator(nn.Module):
    """pix2pix's U-Net (Isola et al. 2017): ``depth`` stride-2 4x4 convolutions down (channels w,
    2w, 4w, 8w, 8w, ..., LeakyReLU 0.2, BatchNorm except on the first and innermost), the mirror up
    (transposed convolutions, BatchNorm, ReLU), each decoder layer concatenated with the encoder
    output of its size (the skip connections).  Dropout on the innermost up to three decoder
    layers is the generator's only noise, as in the paper, and stays on in training only.

    ``depth`` 0 halves down to 1x1 (capped at 8); the input is padded to a multiple of
    ``2**depth``: 28 px digits are padded to 32 (depth 5) and the output cropped back to 28."""

    n_classes = 0

    def __init__(self, source_shape: Sequence[int], data_shape: Sequence[int], out_activation: str = "tanh",
                 width: int = 32, depth: int = 0, dropout: float = 0.5):
        super().__init__()
        ca, cb, size = _same_size(source_shape, data_shape, "unet")
        if depth < 0 or width < 1 or not 0 <= dropout < 1:
            raise ValueError(f"unet: depth >= 0, width >= 1 and dropout in [0, 1) expected, got {depth}, {width}, "
                             f"{dropout}")
        self.depth = depth or min(8, max(1, math.ceil(math.log2(size))))
        step = 2 ** self.depth
        self.size, self.padded_size = size, -(-size // step) * step
        chans = [min(width * 2 ** i, width * 8) for i in range(self.depth)]
        self.down = nn.ModuleList()
        for i, c in enumerate(chans):
            layers: list[nn.Module] = [nn.LeakyReLU(0.2)] if i else []
            layers.append(nn.Conv2d(ca if i == 0 else chans[i - 1], c, 4, 2, 1, bias=False))
            if 0 < i < self.depth - 1:
                layers.append(nn.BatchNorm2d(c))
            self.down.append(nn.Sequential(*layers))
        self.up = nn.ModuleList()
        for j, i in enumerate(reversed(range(self.depth))):  # j = 0 is the innermost
            cin = chans[i] if j == 0 else chans[i] * 2  # the innermost takes no skip
            last = i == 0
            layers = [nn.ReLU(), nn.ConvTranspose2d(cin, cb if last else chans[i - 1], 4, 2, 1, bias=last)]
            if not last:
                layers.append(nn.BatchNorm2d(chans[i - 1]))
                if dropout and j < 3:
                    layers.append(nn.Dropout(dropout))
            self.up.append(nn.Sequential(*layers))
        self.out = out_activation_layer(out_activation)
        init_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = _pad_to(x, self.padded_size)
        skips = []
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        skips.pop()  # the innermost output feeds the first up layer directly
        for j, layer in enumerate(self.up):
            h = layer(h if j == 0 else torch.cat([h, skips.pop()], 1))
        return self.out(_crop(h, self.size))


def patch_layers(n_layers: int) -> list[tuple[int, int]]:
    """(kernel, stride) of every convolution of a PatchGAN with ``n_layers`` stride-2 layers."""
    return [(4, 2)] * n_layers + [(4, 1), (4, 1)]


def patch_receptive_field(n_layers: int) -> int:
    """Receptive field (pixels) of one PatchGAN output: r = (r - 1) * stride + kernel, from the
    output back to the input (70 for n_layers 3, the paper's "70x70 PatchGAN")."""
    r = 1
    for kernel, stride in reversed(patch_layers(n_layers)):
        r = (r - 1) * stride + kernel
    return r


def receptive_field_of(module: nn.Module) -> int:
    """The receptive field of a built network of plain convolutions, from its Conv2d layers."""
    r = 1
    for conv in reversed([m for m in module.modules() if isinstance(m, nn.Conv2d)]):
        r = (r - 1) * conv.stride[0] + conv.kernel_size[0]
    return r


class PatchDiscriminator(Discriminator):
    """pix2pix's PatchGAN: a real/fake logit for every overlapping patch of the receptive field.

    4x4 convolutions: stride 2 to ``width`` (no norm), ``n_layers - 1`` more stride-2 layers
    doubling the channels (capped at 8 * width), a stride-1 layer, then a stride-1 layer to one
    channel; LeakyReLU 0.2.  ``n_layers`` 0 takes the deepest whose receptive field fits the image
    (28 px: 1, receptive field 16; 70x70 needs 3).  ``forward_all`` returns the (B, 1, h, w) logit map."""

    def __init__(self, data_shape: Sequence[int], width: int = 64, n_layers: int = 0, norm: str = "batch"):
        super().__init__()
        channels, size = _square(data_shape, "patchgan")
        if n_layers < 0 or width < 1:
            raise ValueError(f"patchgan: n_layers >= 0 and width >= 1 expected, got {n_layers}, {width}")
        if n_layers == 0:
            n_layers = 1
            while patch_receptive_field(n_layers + 1) <= size:
                n_layers += 1
        out = size
        for kernel, stride in patch_layers(n_layers):
            out = (out + 2 - kernel) // stride + 1
        if out < 1:
            raise ValueError(f"patchgan: {size} px images are too small for {n_layers} layers; lower n_layers")
        self.n_layers, self.receptive_field = n_layers, patch_receptive_field(n_layers)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        ch = width
        for n in range(1, n_layers + 1):
            stride = 2 if n < n_layers else 1
            nxt = width * min(2 ** n, 8)
            layers += [nn.Conv2d(ch, nxt, 4, stride, 1, bias=norm != "batch"), _norm(norm, nxt), nn.LeakyReLU(0.2)]
            ch = nxt
        self.body = nn.Sequential(*layers)
        self.logit = nn.Conv2d(ch, 1, 4, 1, 1)
        init_weights(self)

    def forward_all(self, x, y=None):
        h = self.body(x)
        return {"logits": self.logit(h), "features": h.flatten(1), "aux": None}


class _ResBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.block = nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch), nn.ReLU(),
                                   nn.ReflectionPad2d(1), nn.Conv2d(ch, ch, 3), nn.InstanceNorm2d(ch))

    def forward(self, x):
        return x + self.block(x)


class ResnetTranslator(nn.Module):
    """CycleGAN's generator (Johnson et al. 2016 layout): 7x7 conv to ``width``, ``n_down``
    stride-2 3x3 convs doubling channels, ``n_blocks`` residual blocks (reflection padding,
    InstanceNorm), ``n_down`` transposed convs back, 7x7 conv to the output channels.  Sizes not
    divisible by ``2**n_down`` are padded inside and cropped back (28 px with n_down 2 needs none)."""

    n_classes = 0

    def __init__(self, source_shape: Sequence[int], data_shape: Sequence[int], out_activation: str = "tanh",
                 width: int = 32, n_blocks: int = 6, n_down: int = 2):
        super().__init__()
        ca, cb, size = _same_size(source_shape, data_shape, "resnet_blocks")
        if n_blocks < 0 or n_down < 0 or width < 1:
            raise ValueError(f"resnet_blocks: n_blocks, n_down >= 0 and width >= 1 expected, got {n_blocks}, "
                             f"{n_down}, {width}")
        step = 2 ** n_down
        self.size, self.padded_size = size, -(-size // step) * step
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(ca, width, 7), nn.InstanceNorm2d(width), nn.ReLU()]
        ch = width
        for _ in range(n_down):
            layers += [nn.Conv2d(ch, ch * 2, 3, 2, 1), nn.InstanceNorm2d(ch * 2), nn.ReLU()]
            ch *= 2
        layers += [_ResBlock(ch) for _ in range(n_blocks)]
        for _ in range(n_down):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 3, 2, 1, output_padding=1), nn.InstanceNorm2d(ch // 2), nn.ReLU()]
            ch //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ch, cb, 7)]
        self.body = nn.Sequential(*layers)
        self.out = out_activation_layer(out_activation)
        init_weights(self)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.out(_crop(self.body(_pad_to(x, self.padded_size)), self.size))


class TranslatorPair(nn.Module):
    """CycleGAN's two generators: ``ab`` (A -> B, what ``forward`` runs, so sampling and export
    see the forward translation) and ``ba`` (B -> A).  One optimizer steps both, as in the
    paper's code; ``CycleGANLoss`` reaches into both."""

    n_classes = 0

    def __init__(self, ab: nn.Module, ba: nn.Module):
        super().__init__()
        self.ab, self.ba = ab, ba

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.ab(x)

    def reverse(self, x: torch.Tensor) -> torch.Tensor:
        return self.ba(x)


class DiscriminatorPair(Discriminator):
    """CycleGAN's two discriminators: ``b`` judges domain B (``forward_all`` uses it), ``a`` domain A."""

    def __init__(self, b: nn.Module, a: nn.Module):
        super().__init__()
        self.b, self.a = b, a

    def forward_all(self, x, y=None):
        return self.b.forward_all(x, y)


def _unet(source_shape, data_shape, out_activation, width: int = 32, depth: int = 0, dropout: float = 0.5):
    return UNetGenerator(source_shape, data_shape, out_activation, width=width, depth=depth, dropout=dropout)


def _resnet_blocks(source_shape, data_shape, out_activation, width: int = 32, n_blocks: int = 6, n_down: int = 2):
    return ResnetTranslator(source_shape, data_shape, out_activation, width=width, n_blocks=n_blocks, n_down=n_down)


def _patchgan(data_shape, n_classes, aux_classes, width: int = 64, n_layers: int = 0, norm: str = "batch"):
    if n_classes or aux_classes:
        raise ValueError("the PatchGAN discriminator takes no class labels (conditioning must be none)")
    return PatchDiscriminator(data_shape, width=width, n_layers=n_layers, norm=norm)


TRANSLATORS.register("unet", _unet, "U-Net with skip connections, dropout as its noise (pix2pix); 28 px is "
                     "padded to 32 inside; options: width, depth (0 = down to 1x1), dropout")
TRANSLATORS.register("resnet_blocks", _resnet_blocks, "down-sampling, residual blocks with InstanceNorm, "
                     "up-sampling (Johnson et al. 2016; CycleGAN); options: width, n_blocks, n_down")
DISCRIMINATORS.register("patchgan", _patchgan, "PatchGAN: a real/fake logit per overlapping patch (pix2pix); "
                        "options: width, n_layers (0 = the deepest whose receptive field fits the image), "
                        "norm batch|instance|none")
