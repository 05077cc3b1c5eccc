"""Discriminator wrappers any architecture takes: PacGAN's packing and pix2pixHD's scales."""

from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import Discriminator


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
