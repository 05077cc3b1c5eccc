"""Feature extractors for the image metrics (a registry).

An extractor maps images (uint8 or model range) to features (N, d) float64 and, when it has a
classification head, logits (N, K).  Its ``name`` goes into every report, because FID values on
different features are not comparable.
"""

from __future__ import annotations

import inspect
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
    """``fn(images) -> (features, logits or None)``; ``fn`` may take ``desc=`` (a progress label)."""

    name: str
    fn: Callable[..., tuple[np.ndarray, np.ndarray | None]]
    # What the values depend on besides the network (the resize before Inception, ...): every
    # metrics file records it.
    preprocessing: str = ""
    # Whether ``fn`` takes numpy arrays as they are: a memory map is then read batch by batch and
    # its pages given back (the built-in extractors).  Otherwise (a plugin's) it gets a tensor.
    arrays: bool = False

    def __call__(self, x: np.ndarray | torch.Tensor, desc: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        x = x if self.arrays and isinstance(x, (np.ndarray, torch.Tensor)) else torch.as_tensor(x)
        if desc is not None and "desc" in inspect.signature(self.fn).parameters:
            return self.fn(x, desc=desc)
        return self.fn(x)


# Feature extractors (params.yaml: prepare.extractor); each module registers its own.
EXTRACTORS: Registry[Callable[..., Extractor]] = Registry("feature extractor", ("prepared_dir",))


def _pixels(prepared_dir: Path, **_) -> Extractor:
    """Images area-averaged to 8x8 and flattened: a crude fallback for unlabelled data (cheap: it
    runs on the CPU whatever the device)."""

    @torch.no_grad()
    def fn(x: np.ndarray | torch.Tensor) -> tuple[np.ndarray, None]:
        from ..mapped import release

        out = []
        for i in range(0, len(x), 1000):
            b = to_model_range(torch.as_tensor(x[i:i + 1000]))
            out.append(F.adaptive_avg_pool2d(b, 8).flatten(1).double())
            if isinstance(x, np.ndarray):
                release(x)
        return torch.cat(out).numpy(), None

    return Extractor("pixels8x8", fn, arrays=True)


EXTRACTORS.register("pixels", _pixels, "8x8 area-averaged pixels (fallback for unlabelled images)")


def make(key: str, prepared_dir: Path, device: str | torch.device = "cpu", **options) -> Extractor:
    """The registered extractor ``key`` with ``options``, its network on ``device`` when it takes one
    (a plugin's extractor that does not take ``device`` runs where it runs)."""
    fn = EXTRACTORS.get(key)
    takes_device = "device" in inspect.signature(fn).parameters
    return fn(prepared_dir, **({"device": device} if takes_device else {}), **options)


def load_for(prepared_dir: Path, manifest: dict, device: str | torch.device = "cpu") -> Extractor:
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
    return make(info["key"], prepared_dir, device, **info.get("options", {}))
