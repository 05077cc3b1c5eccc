"""What every network shares: the interface, the heads, the size plan, and the registries.

Every generator maps ``(z, y=None) -> x`` and every discriminator maps ``(x, y=None)`` to a dict
``{"logits": (B,), "features": (B, F), "aux": (B, K) or None}`` through ``forward_all``;
``forward`` returns the logits alone.  ``y`` are integer class labels, used by conditional
networks (``n_classes > 0``) and ignored otherwise.  The loss decides what logits mean (a
probability through a sigmoid for BCE, a critic value for WGAN).  Every network takes its sizes
as arguments: nothing here reads globals or the data set.

Shapes are written (C, H, W) for images and (D,) for points; ``data_shape`` is one sample's.
Each family's module registers its builders beside its classes (``mlp.py``, ``dcgan.py``, ...).
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry

# What a variant's build passes every builder of a kind; a builder's other parameters are its
# options (params.yaml: generator: {arch: NAME, option: value}).
G_ARGS = ("z_dim", "data_shape", "out_activation", "n_classes")
D_ARGS = ("data_shape", "n_classes", "aux_classes")
# Image-to-image generators (the generator of a variant whose loss translates: pix2pix, CycleGAN)
# map input images of ``source_shape`` to images of ``data_shape``.
T_ARGS = ("source_shape", "data_shape", "out_activation")
GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator architecture", G_ARGS)
TRANSLATORS: Registry[Callable[..., nn.Module]] = Registry("translation generator architecture", T_ARGS)
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator architecture", D_ARGS)


def out_activation_layer(name: str) -> nn.Module:
    if name == "tanh":
        return nn.Tanh()  # images live in [-1, 1]
    if name == "identity":
        return nn.Identity()  # unbounded data such as the 2D mixtures
    raise ValueError(f"unknown output activation {name!r}; allowed: tanh, identity")


def with_labels(z: torch.Tensor, y: torch.Tensor | None, n_classes: int) -> torch.Tensor:
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


class Heads(nn.Module):
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


def check_square_image(data_shape: Sequence[int], arch: str) -> tuple[int, int]:
    if len(data_shape) != 3 or data_shape[1] != data_shape[2]:
        raise ValueError(f"{arch} needs square images (C, H, H); this data set has samples of shape "
                         f"{tuple(data_shape)}; use the mlp architecture for point data")
    return data_shape[0], data_shape[1]


def spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every Linear / Conv layer of ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_norm(child)
    return module


def maybe_spectral_norm(module: nn.Module, on: bool) -> nn.Module:
    return spectral_norm(module) if on else module
