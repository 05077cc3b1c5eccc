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

from ..data.base import to_model_range
from ..registry import Registry


@dataclass
class Extractor:
    name: str
    fn: Callable[[torch.Tensor], tuple[np.ndarray, np.ndarray | None]]

    def __call__(self, x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]:
        return self.fn(torch.as_tensor(x))


# Feature extractors (params.yaml: prepare.extractor); each module registers its own.
EXTRACTORS: Registry[Callable[..., Extractor]] = Registry("feature extractor", ("prepared_dir",))


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


EXTRACTORS.register("pixels", _pixels, "8x8 area-averaged pixels (fallback for unlabelled images)")


def load_for(prepared_dir: Path, manifest: dict) -> Extractor:
    """The extractor the prepare stage used for this data (its reference statistics match it)."""
    info = manifest.get("extractor")
    if not info:
        raise ValueError("this data set has no image feature extractor (point data uses mode metrics)")
    if info.get("weights_sha256"):  # Inception: the file read now must be the one the statistics used
        from ..data.base import DataError
        from ..files import sha256_file
        from .inception import find_weights

        path = find_weights(info.get("options", {}).get("weights"))
        if path is None or sha256_file(path) != info["weights_sha256"]:
            raise DataError(f"the Inception weights file ({path or 'not found'}) is not the one the reference "
                            "statistics in data/prepared were computed with; rerun python -m flows prepare")
    return EXTRACTORS.get(info["key"])(prepared_dir, **info.get("options", {}))
