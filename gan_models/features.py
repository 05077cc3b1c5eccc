"""Feature extractors for the image metrics (a registry).

An extractor maps images (uint8 or model range) to features (N, d) float64 and, when it has a
classification head, logits (N, K).  Its ``name`` goes into every report, because FID values on
different features are not comparable.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from .registry import Registry
from .data import to_model_range


@dataclass
class Extractor:
    name: str
    fn: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]

    def __call__(self, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        return self.fn(torch.as_tensor(x))


def _classifier(prepared_dir: Path, **_) -> Extractor:
    from .classifier import features_and_logits, load_classifier

    path = Path(prepared_dir) / "classifier.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the classifier extractor needs labelled images "
                                "(rerun the prepare stage, or use the pixels extractor for unlabelled data)")
    model = load_classifier(path)
    return Extractor("classifier", lambda x: features_and_logits(model, x))


def _stacked_digits(prepared_dir: Path, **_) -> Extractor:
    """Stacked MNIST: the digit classifier on every channel.  Features: the channels' 128-d
    features side by side; logits: the joint log-probability of each of the 10**C digit
    combinations, sum over channels of log softmax, indexed 100 * d0 + 10 * d1 + d2 (the data
    set's labels), so its argmax is the three per-channel argmaxes and the class metrics count
    modes."""
    from .classifier import features_and_logits, load_classifier

    path = Path(prepared_dir) / "digit_classifier.pt"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: the stacked_digits extractor needs the digit classifier that "
                                "prepare trains for prepare.dataset=stacked_mnist")
    model = load_classifier(path)

    def fn(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, joint = [], None
        for c in range(x.shape[1]):
            f, logits = features_and_logits(model, x[:, c:c + 1])
            lp = logits - logits.max(1, keepdims=True)
            lp -= np.log(np.exp(lp).sum(1, keepdims=True))  # log softmax
            feats.append(f)
            joint = lp if joint is None else (joint[:, :, None] + lp[:, None, :]).reshape(len(lp), -1)
        return np.concatenate(feats, 1), joint

    return Extractor("stacked_digits", fn)


def _pixels(prepared_dir: Path, **_) -> Extractor:
    """Images area-averaged to 8x8 and flattened: a crude fallback for unlabelled data."""

    @torch.no_grad()
    def fn(x: torch.Tensor) -> tuple[np.ndarray, None]:
        out = []
        for i in range(0, len(x), 1000):
            b = to_model_range(x[i:i + 1000])
            out.append(F.adaptive_avg_pool2d(b, 8).flatten(1).double())
        return torch.cat(out).numpy(), None

    return Extractor("pixels8x8", fn)


def _inception(prepared_dir: Path, weights: str | None = None, url: str | None = None,
               batch_size: int = 50) -> Extractor:
    """The FID Inception-v3 (pytorch-fid / torch-fidelity): 2048-d pool3 features, 1008 logits."""
    from .inception import load_fid_inception

    from .classifier import features_and_logits

    model = load_fid_inception(weights, url)
    return Extractor("inception", lambda x: features_and_logits(model, x, batch_size=batch_size))


EXTRACTORS: Registry[Callable[..., Extractor]] = Registry("feature extractor", ("prepared_dir",))
EXTRACTORS.register("classifier", _classifier, "small CNN trained on the prepared labelled data (offline default)")
EXTRACTORS.register("inception", _inception, "FID Inception-v3 (pytorch-fid weights file); comparable with "
                    "published FIDs")
EXTRACTORS.register("pixels", _pixels, "8x8 area-averaged pixels (fallback for unlabelled images)")
EXTRACTORS.register("stacked_digits", _stacked_digits, "Stacked MNIST: the digit classifier on every channel "
                    "(joint logits over the 1,000 modes; the default for stacked_mnist)")


def load_for(prepared_dir: Path, manifest: dict) -> Extractor:
    """The extractor the prepare stage used for this data (its reference statistics match it)."""
    info = manifest.get("extractor")
    if not info:
        raise ValueError("this data set has no image feature extractor (point data uses mode metrics)")
    if info.get("weights_sha256"):  # Inception: the file read now must be the one the statistics used
        from .checkpoint import sha256_file
        from .data import DataError
        from .inception import find_weights

        path = find_weights(info.get("options", {}).get("weights"))
        if path is None or sha256_file(path) != info["weights_sha256"]:
            raise DataError(f"the Inception weights file ({path or 'not found'}) is not the one the reference "
                            "statistics in data/prepared were computed with; rerun python -m flows prepare")
    return EXTRACTORS.get(info["key"])(prepared_dir, **info.get("options", {}))


def perceptual_network(kind: str, prepared_dir: Path, vgg_weights: str | None = None) -> torch.nn.Module:
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

        from .perceptual import hub_weights

        path = hub_weights("vgg16-397923af.pth", vgg_weights, "VGG16 (tricks.perceptual_net: vgg16; or use classifier)")
        vgg = torchvision.models.vgg16(weights=None)
        vgg.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        body = vgg.features[:16].eval()  # up to relu3_3
        mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
        std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

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
        m.eval().requires_grad_(False)
    return net
