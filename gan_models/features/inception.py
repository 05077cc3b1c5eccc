"""The FID Inception-v3 network (the one pytorch-fid and torch-fidelity use), built on torchvision.

It differs from torchvision's Inception3 in four block types, ported from the TensorFlow graph
the original FID code used: average pools that do not count padding (A, C, E_1) and a max pool
in the last block (E_2).  Images are resized to 299x299 (bilinear, align_corners=False), taken
in [-1, 1]; pool3 gives the 2048-d FID features and ``fc`` the 1008 logits used for IS.

Weights: ``pt_inception-2015-12-05-6726825d.pth`` (the pytorch-fid release file).  They are
looked up at the path given, then in torch hub's checkpoint folder; they are downloaded only
when a URL is given.  The file is a plain state dict, loaded with ``weights_only=True``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.inception import Inception3, InceptionA, InceptionC, InceptionE

from .base import EXTRACTORS, Extractor
from .classifier import features_and_logits

WEIGHTS_NAME = "pt_inception-2015-12-05-6726825d.pth"


class _FIDInceptionA(InceptionA):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return torch.cat([b1, b5, b3, bp], 1)


class _FIDInceptionC(InceptionC):
    def forward(self, x):
        b1 = self.branch1x1(x)
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = x
        for layer in (self.branch7x7dbl_1, self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4,
                      self.branch7x7dbl_5):
            bd = layer(bd)
        bp = self.branch_pool(F.avg_pool2d(x, 3, 1, 1, count_include_pad=False))
        return torch.cat([b1, b7, bd, bp], 1)


class _FIDInceptionE(InceptionE):
    max_pool = False  # E_1: average pool without padding counts; E_2: max pool

    def forward(self, x):
        b1 = self.branch1x1(x)
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        pooled = F.max_pool2d(x, 3, 1, 1) if self.max_pool else F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)
        return torch.cat([b1, b3, bd, self.branch_pool(pooled)], 1)


class _FIDInceptionE2(_FIDInceptionE):
    max_pool = True


# How images reach the network's 299 x 299 input (prepare.inception_resize); every metrics file
# names the mode, because FIDs after different resizes do not compare.
RESIZE = {"bilinear": "bilinear to 299 x 299 on [-1, 1], as pytorch-fid (comparable with published FIDs)",
          "clean": "quantised to uint8, then antialiased bicubic to 299 x 299 per channel in float, as clean-fid "
                   "(Parmar et al. 2022)"}
SIZE = 299


def clean_resize(x: torch.Tensor) -> torch.Tensor:
    """clean-fid's resize: (N, C, H, W) uint8 images (float ones in [-1, 1] are first quantised to
    uint8, as clean-fid quantises generated images) -> float32 (N, C, 299, 299) in [-1, 1], each
    channel resized by PIL's antialiased bicubic filter in float ("F") mode and clipped to [0, 255]."""
    from PIL import Image

    if x.dtype != torch.uint8:
        x = ((x.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    a = x.cpu().numpy()
    out = np.empty((*a.shape[:2], SIZE, SIZE), np.float32)
    for i in range(a.shape[0]):
        for c in range(a.shape[1]):
            img = Image.fromarray(a[i, c].astype(np.float32), mode="F").resize((SIZE, SIZE), Image.BICUBIC)
            out[i, c] = np.asarray(img).clip(0, 255)
    return torch.from_numpy(out) / 127.5 - 1


class FIDInception(nn.Module):
    """(N, C, H, W) in [-1, 1] -> (pool3 features (N, 2048), logits (N, 1008)).  Inputs of any size
    are resized bilinearly (pytorch-fid); inputs already 299 x 299 (``clean_resize``) pass as they are."""

    def __init__(self):
        super().__init__()
        net = Inception3(num_classes=1008, aux_logits=False, init_weights=False)
        net.Mixed_5b = _FIDInceptionA(192, pool_features=32)
        net.Mixed_5c = _FIDInceptionA(256, pool_features=64)
        net.Mixed_5d = _FIDInceptionA(288, pool_features=64)
        net.Mixed_6b = _FIDInceptionC(768, channels_7x7=128)
        net.Mixed_6c = _FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6d = _FIDInceptionC(768, channels_7x7=160)
        net.Mixed_6e = _FIDInceptionC(768, channels_7x7=192)
        net.Mixed_7b = _FIDInceptionE(1280)
        net.Mixed_7c = _FIDInceptionE2(2048)
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)  # grey -> RGB
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
        n = self.net
        for layer in (n.Conv2d_1a_3x3, n.Conv2d_2a_3x3, n.Conv2d_2b_3x3, n.maxpool1, n.Conv2d_3b_1x1,
                      n.Conv2d_4a_3x3, n.maxpool2, n.Mixed_5b, n.Mixed_5c, n.Mixed_5d, n.Mixed_6a, n.Mixed_6b,
                      n.Mixed_6c, n.Mixed_6d, n.Mixed_6e, n.Mixed_7a, n.Mixed_7b, n.Mixed_7c):
            x = layer(x)
        feats = F.adaptive_avg_pool2d(x, 1).flatten(1)  # pool3, 2048
        return feats, n.fc(feats)


def find_weights(path: str | os.PathLike | None = None) -> Path | None:
    """The weights file: ``path`` if given, else torch hub's checkpoints folder; None if absent."""
    if path is not None:
        return Path(path) if Path(path).is_file() else None
    hub = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
    return hub if hub.is_file() else None


def load_fid_inception(path: str | os.PathLike | None = None, url: str | None = None) -> FIDInception:
    """Build the network and load its weights (see the module docstring for where from)."""
    found = find_weights(path)
    if found is None and url:
        dest = Path(torch.hub.get_dir()) / "checkpoints" / WEIGHTS_NAME
        dest.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(dest))
        found = dest
    if found is None:
        where = f"{path} (the path configured)" if path else \
            f"{Path(torch.hub.get_dir()) / 'checkpoints' / WEIGHTS_NAME} (torch hub's cache, under $TORCH_HOME)"
        raise FileNotFoundError(
            f"FID Inception weights not found: put the file {WEIGHTS_NAME} (the pytorch-fid release file) at {where}, "
            "or set prepare.inception_weights to its path, or prepare.inception_url to download it when online")
    model = FIDInception()
    state = torch.load(found, map_location="cpu", weights_only=True)
    missing, unexpected = model.net.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ValueError(f"{found} does not hold FID Inception weights (missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]})")
    return model.eval()


def _inception(prepared_dir: Path, weights: str | None = None, url: str | None = None, batch_size: int = 50,
               resize: str = "bilinear", device: str | torch.device = "cpu") -> Extractor:
    """The FID Inception-v3 (pytorch-fid / torch-fidelity): 2048-d pool3 features, 1008 logits, after
    the ``resize`` of ``RESIZE``."""
    if resize not in RESIZE:
        raise ValueError(f"prepare.inception_resize must be one of {', '.join(RESIZE)}, got {resize!r}")
    model = load_fid_inception(weights, url)
    to_input = clean_resize if resize == "clean" else None
    return Extractor("inception", lambda x, desc=None: features_and_logits(
        model, x, batch_size=batch_size, device=device, desc=desc, to_input=to_input), preprocessing=RESIZE[resize],
        arrays=True)


EXTRACTORS.register("inception", _inception, "FID Inception-v3 (pytorch-fid weights file); comparable with "
                    "published FIDs")
