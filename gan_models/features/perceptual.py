"""LPIPS (Zhang et al. 2018), the same construction on the data set's own classifier, and the
diversity score built on them (mean pairwise distance among samples, as MSGAN/BicycleGAN report it).

The construction, one for every network: feed both images through the network, take the feature
maps of a few layers, normalise each spatial position's channel vector to unit length, square the
differences, weight the channels, average over space and sum over layers:

    d(x, y) = sum_l mean_hw sum_c w_lc (f_l(x)_chw / |f_l(x)_hw| - f_l(y)_chw / |f_l(y)_hw|)^2

* ``lpips-alex`` / ``lpips-vgg``: torchvision's AlexNet / VGG16 (backbone weights from a local file:
  the path given, else torch hub's ``checkpoints`` folder; never downloaded here), the ``lpips``
  package's input scaling and its calibrated linear weights ``w`` (``weights/v0.1/<net>.pth``, shipped
  with the package).  Inputs become what the package expects: 3 channels (grey repeated), range
  [-1, 1], at least 64x64 (bilinear; the size LPIPS was calibrated on, and AlexNet's five layers need
  more than 28 px).
* ``clfpips``: the data set's classifier (``classifier.pt`` of the prepare stage), its three
  convolutional ReLUs at the native size, **uncalibrated** (every ``w`` = 1).  Offline and cheap, but
  not LPIPS: its numbers carry their own name everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data.base import to_model_range
from ..files import sha256_file

# net -> (torchvision builder name, weights file torchvision names it, feature indices tapped (ReLU outputs))
BACKBONES = {"alex": ("alexnet", "alexnet-owt-7be5be79.pth", (1, 4, 7, 9, 11)),
             "vgg": ("vgg16", "vgg16-397923af.pth", (3, 8, 15, 22, 29))}
LPIPS_SIZE = 64
# The lpips package's ScalingLayer: ImageNet statistics expressed for inputs in [-1, 1].
_SHIFT = torch.tensor([-.030, -.088, -.188]).view(1, 3, 1, 1)
_SCALE = torch.tensor([.458, .448, .450]).view(1, 3, 1, 1)
CLASSIFIER_TAPS = (1, 3, 6)  # SmallCNN.body: the ReLUs after conv1, conv2, conv3


def weights_path(filename: str, path: str | Path | None = None) -> Path:
    """Where a torchvision weights file is read from: ``path`` if given, else torch hub's
    ``<hub dir>/checkpoints/<filename>`` (where torchvision itself caches it)."""
    return Path(path) if path else Path(torch.hub.get_dir()) / "checkpoints" / filename


def hub_weights(filename: str, path: str | Path | None = None, what: str = "") -> Path:
    """``weights_path``, which must exist: FileNotFoundError says which file goes where (nothing is
    downloaded)."""
    p = weights_path(filename, path)
    if not p.is_file():
        raise FileNotFoundError(f"{what or filename} weights not found at {p}: put torchvision's {filename} "
                                "there (or give its path in params.yaml); nothing is downloaded at run time")
    return p


def lpips_linear_file(net: str) -> Path:
    """The calibrated linear layers the ``lpips`` package ships for ``net``."""
    import lpips

    return Path(lpips.__file__).resolve().parent / "weights" / "v0.1" / f"{net}.pth"


@dataclass
class PerceptualDistance:
    """``d(x, y)`` per pair of images (uint8 or model range, N x C x H x W), as float64."""

    name: str  # goes into every report: lpips-alex, lpips-vgg, clfpips
    key: str  # prefix of the score names: lpips_alex, lpips_vgg, clfpips
    taps: Callable[[torch.Tensor], list[torch.Tensor]]  # network input -> feature maps per layer
    prepare: Callable[[torch.Tensor], torch.Tensor]  # images -> network input
    weights: list[torch.Tensor] | None  # per layer (C,) channel weights; None: all 1 (uncalibrated)
    files: dict[str, str]  # weight files read -> SHA-256 (recorded with the scores)
    device: torch.device = torch.device("cpu")  # where the network and the batches run

    @torch.no_grad()
    def __call__(self, x: np.ndarray | torch.Tensor, y: np.ndarray | torch.Tensor,
                 batch_size: int = 200) -> np.ndarray:
        x, y = torch.as_tensor(x), torch.as_tensor(y)
        if x.shape != y.shape:
            raise ValueError(f"perceptual distance of different shapes: {tuple(x.shape)} and {tuple(y.shape)}")
        out = []
        for i in range(0, len(x), batch_size):
            fx = self.taps(self.prepare(x[i:i + batch_size].to(self.device)))
            fy = self.taps(self.prepare(y[i:i + batch_size].to(self.device)))
            d = torch.zeros(len(fx[0]), dtype=torch.float64, device=self.device)
            for layer, (a, b) in enumerate(zip(fx, fy)):
                diff = (_unit(a) - _unit(b)) ** 2
                if self.weights is not None:
                    diff = diff * self.weights[layer].view(1, -1, 1, 1)
                d += diff.sum(1).mean((1, 2)).double()
            out.append(d.cpu())
        return torch.cat(out).numpy()


def _unit(f: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Each position's channel vector to unit length (the lpips package's normalize_tensor)."""
    return f / (f.pow(2).sum(1, keepdim=True).sqrt() + eps)


def _tapping(body: torch.nn.Sequential, taps: tuple[int, ...]) -> Callable[[torch.Tensor], list[torch.Tensor]]:
    def run(x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for i, layer in enumerate(body[:max(taps) + 1]):
            x = layer(x)
            if i in taps:
                out.append(x)
        return out
    return run


def lpips_input(x: torch.Tensor) -> torch.Tensor:
    """Images as LPIPS expects them: float in [-1, 1], 3 channels, at least 64x64."""
    x = to_model_range(x)
    if x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    if min(x.shape[-2:]) < LPIPS_SIZE:
        h, w = x.shape[-2:]
        s = LPIPS_SIZE / min(h, w)
        x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", align_corners=False)
    return x


def lpips(net: str = "alex", weights: str | Path | None = None,
          device: str | torch.device = "cpu") -> PerceptualDistance:
    """LPIPS with torchvision's ``net`` backbone (alex | vgg) from the local weights file ``weights``
    (default: torch hub's checkpoints folder) and the package's calibrated linear layers, on ``device``."""
    import torchvision

    if net not in BACKBONES:
        raise ValueError(f"unknown LPIPS network {net!r}; known: {', '.join(BACKBONES)}")
    builder, filename, taps = BACKBONES[net]
    wfile = hub_weights(filename, weights, f"LPIPS-{net} backbone ({builder})")
    model = getattr(torchvision.models, builder)(weights=None)
    try:
        model.load_state_dict(torch.load(wfile, map_location="cpu", weights_only=True))
    except Exception as e:
        raise ValueError(f"{wfile} is not torchvision's {builder} weights file ({type(e).__name__}: "
                         f"{str(e).splitlines()[0][:200]})") from None
    device = torch.device(device)
    body = model.features.eval().requires_grad_(False).to(device)
    lin_file = lpips_linear_file(net)
    lin = torch.load(lin_file, map_location="cpu", weights_only=True)
    w = [lin[f"lin{k}.model.1.weight"].flatten().double().to(device) for k in range(len(taps))]
    tap = _tapping(body, taps)
    shift, scale = _SHIFT.to(device), _SCALE.to(device)
    return PerceptualDistance(
        f"lpips-{net}", f"lpips_{net}", lambda x: [f.double() for f in tap(x)],
        lambda x: (lpips_input(x) - shift) / scale, w,
        {wfile.name: sha256_file(wfile), f"lpips/{lin_file.name}": sha256_file(lin_file)}, device)


def classifier_pips(classifier_file: str | Path, device: str | torch.device = "cpu") -> PerceptualDistance:
    """The LPIPS construction on the data set's classifier, uncalibrated (equal weights)."""
    from .classifier import load_classifier

    path = Path(classifier_file)
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the clfpips distance needs the prepare stage's classifier "
                                "(labelled images); for other data set evaluate.diversity.net: alex or vgg")
    device = torch.device(device)
    body = load_classifier(path).body.requires_grad_(False).to(device)
    tap = _tapping(body, CLASSIFIER_TAPS)
    return PerceptualDistance("clfpips", "clfpips", lambda x: [f.double() for f in tap(x)], to_model_range, None,
                              {path.name: sha256_file(path)}, device)


def distance_for(net: str, prepared_dir: str | Path, weights: str | Path | None = None,
                 device: str | torch.device = "cpu") -> PerceptualDistance:
    """The distance ``evaluate.diversity.net`` names: clfpips (``classifier``), lpips-alex, lpips-vgg."""
    if net == "classifier":
        return classifier_pips(Path(prepared_dir) / "classifier.pt", device)
    return lpips(net, weights, device)


def perceptual_network(kind: str, prepared_dir: Path, vgg_weights: str | None = None,
                       device: str | torch.device = "cpu") -> torch.nn.Module:
    """A frozen feature network for the perceptual loss term: images in [-1, 1] -> (B, F).

    classifier: the data set's own classifier (penultimate features).  vgg16: torchvision's VGG16
    up to relu3_3 with ImageNet normalisation, weights from ``vgg_weights`` or torch hub's
    checkpoints folder (vgg16-397923af.pth); never downloaded here.
    """
    if kind == "classifier":
        from .classifier import load_classifier

        path = Path(prepared_dir) / "classifier.pt"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: the perceptual loss on the classifier needs labelled images")
        model = load_classifier(path)
        net = lambda x: model(x)[0]  # noqa: E731
        modules = [model]
    elif kind == "vgg16":
        import torchvision

        path = hub_weights("vgg16-397923af.pth", vgg_weights, "VGG16 (tricks.perceptual_net: vgg16; or use classifier)")
        vgg = torchvision.models.vgg16(weights=None)
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        body = vgg.features[:16].eval()  # up to relu3_3
        mean = torch.tensor([0.485, 0.456, 0.406], device=device).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225], device=device).view(1, 3, 1, 1)

        def net(x):
            x = (x + 1) / 2
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            if x.shape[-1] < 32:
                x = F.interpolate(x, size=(32, 32), mode="bilinear", align_corners=False)
            return body((x - mean) / std).mean((2, 3))
        modules = [body]
    else:
        raise ValueError(f"unknown perceptual network {kind!r}; known: classifier, vgg16")
    for m in modules:
        m.eval().requires_grad_(False).to(device)
    return net
