"""What every data set shares: the description a variant is built for, the raw arrays a loader
returns, the errors, and the registry with what is known of each data set before loading it.

Prepared format (what every later stage reads): ``x`` is uint8 (N, C, H, W) for images (model
range [-1, 1] is applied per batch) or float32 (N, D) for points; ``y`` is int64 labels, -1
when unlabelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ..registry import Registry


@dataclass(frozen=True)
class DataInfo:
    """What a variant needs to know about the prepared data."""

    kind: str  # "image" (C, H, W) in [-1, 1] or "points" (D,) unbounded
    shape: tuple[int, ...]
    n_classes: int = 0  # 0 when the data set has no labels
    # Image-to-image translation data: "paired" (every source image has its target) or
    # "unpaired" (two domains); ``shape`` is then the target domain's, ``source_shape`` the input's.
    translation: str | None = None
    source_shape: tuple[int, ...] | None = None
    # Per-sample inputs besides the label that a variant can be conditioned on: (name, dimension),
    # measured attributes of grey images or a folder's own (prepare.inputs).
    inputs: tuple[tuple[str, int], ...] = ()


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1]; float data passes through."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)
    return batch.float()

class DataError(ValueError):
    """The data set cannot be loaded as configured (missing folder, unreadable image, ...)."""


@dataclass
class RawData:
    x: np.ndarray  # uint8 (N, C, H, W) or float32 (N, D)
    y: np.ndarray  # int64 (N,), -1 = unlabelled
    kind: str  # "image" | "points"
    classes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. mixture centres and std
    # Translation data (``translation`` "paired" or "unpaired"): ``x``/``y`` are the target domain B,
    # ``source``/``source_y`` the input domain A.  ``aligned``: source[i] and x[i] show the same
    # thing (ground truth exists; for an unpaired task prepare trains on disjoint halves);
    # ``held``: a held-out split the loader brings itself (a user's testA/testB folders; Stacked
    # MNIST's images of held-out digits), used instead of ``prepare.heldout_fraction``.
    translation: str | None = None
    source: np.ndarray | None = None
    source_y: np.ndarray | None = None
    aligned: bool = False
    held: "RawData | None" = None
    # Per-sample inputs a loader brings (a folder's prepare.inputs): name -> float32 (N,) or (N, d).
    inputs: dict[str, np.ndarray] = field(default_factory=dict)



@dataclass(frozen=True)
class DataFacts:
    """What is known of a data set before it is loaded, declared where it is registered; the early
    checks of params.yaml read it (a plugin data set that declares its facts gets them too)."""

    kind: str = "image"  # "image" or "points"
    shape: tuple[int, ...] | None = None  # one sample's (C, H, W) or (D,); None: known from the files only
    n_classes: int | None = None  # 0: unlabelled; None: known from the files only
    n_samples: int | str | None = None  # a count, "n_points" (prepare.n_points of them), or None: from the files
    translation: str | None = None  # "paired" or "unpaired" for image-to-image translation data
    train_parts: int = 1  # an unpaired set that trains each domain on its own part of the split (2)


# What the prepare stage passes every loader (a loader takes what it needs, ``**_`` the rest).
LOADER_ARGS = ("root", "download", "image_size", "channels", "n_points", "seed")
# Data sets (params.yaml: prepare.dataset); each module registers its loaders with their facts.
DATASETS: Registry[Callable[..., RawData]] = Registry("data set", LOADER_ARGS)
