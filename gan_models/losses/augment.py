"""DiffAugment (Zhao et al. 2020): the same random, differentiable transforms on real and fake
inputs of D.  Randomness from torch's global RNG (seeded and checkpointed by the trainer)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from ..registry import Registry


def _brightness(x):
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5)


def _saturation(x):
    mean = x.mean(1, keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) * 2) + mean


def _contrast(x):
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) + 0.5) + mean


def _translation(x, ratio: float = 0.125):
    """Shift by up to ratio * size pixels, padding with zeros (reflect-free, as DiffAugment)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gi = torch.clamp(gi.unsqueeze(0) + tx + 1, 0, h + 1)
    gj = torch.clamp(gj.unsqueeze(0) + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, gi, gj].permute(0, 3, 1, 2)


def _cutout(x, ratio: float = 0.5):
    """Zero a random square of ratio * size per sample."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gi = torch.arange(h, device=x.device)[None, :, None]
    gj = torch.arange(w, device=x.device)[None, None, :]
    inside = (gi >= oy - ch // 2) & (gi < oy - ch // 2 + ch) & (gj >= ox - cw // 2) & (gj < ox - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


# DiffAugment policies (tricks.augment): a name to the differentiable image ops it applies in
# turn, each (N, C, H, W) -> (N, C, H, W) on real and fake batches alike.  Plugins add their own.
AUGMENTATIONS: Registry[list[Callable[[torch.Tensor], torch.Tensor]]] = Registry("augmentation policy")
AUGMENTATIONS.register("color", [_brightness, _saturation, _contrast], "random brightness, saturation, contrast")
AUGMENTATIONS.register("translation", [_translation], "random shift by up to 1/8 of the size, zero padded")
AUGMENTATIONS.register("cutout", [_cutout], "a random square of half the size set to zero")


def policies(policy: str) -> list[str]:
    return [p.strip() for p in policy.split(",") if p.strip()]


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    if not policy or x.dim() != 4:
        return x  # points data is never augmented
    for p in policies(policy):
        ops = AUGMENTATIONS.get(p)
        if not isinstance(ops, (list, tuple)):
            ops = [ops]
        for fn in ops:
            x = fn(x)
    return x
