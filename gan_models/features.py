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
from .training import to_model_range


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

    model = load_fid_inception(weights, url)

    @torch.no_grad()
    def fn(x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = [], []
        for i in range(0, len(x), batch_size):
            f, lg = model(to_model_range(x[i:i + batch_size]))
            feats.append(f.double())
            logits.append(lg.double())
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    return Extractor("inception", fn)


EXTRACTORS: Registry[Callable[..., Extractor]] = Registry("feature extractor")
EXTRACTORS.register("classifier", _classifier, "small CNN trained on the prepared labelled data (offline default)")
EXTRACTORS.register("inception", _inception, "FID Inception-v3 (pytorch-fid weights file); comparable with "
                    "published FIDs")
EXTRACTORS.register("pixels", _pixels, "8x8 area-averaged pixels (fallback for unlabelled images)")


def load_for(prepared_dir: Path, manifest: dict) -> Extractor:
    """The extractor the prepare stage used for this data (its reference statistics match it)."""
    info = manifest.get("extractor")
    if not info:
        raise ValueError("this data set has no image feature extractor (point data uses mode metrics)")
    return EXTRACTORS.get(info["key"])(prepared_dir, **info.get("options", {}))
