"""Diversity: the mean perceptual distance between random pairs of samples, generated and real
(``gan_models.features.perceptual`` gives the distance), and their ratio."""

from __future__ import annotations

import numpy as np
import torch

from ..features.perceptual import PerceptualDistance
from .base import score


def random_pairs(n: int, n_pairs: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n_pairs`` index pairs (i, j), i != j, each uniform over the n * (n - 1) ordered pairs."""
    if n < 2:
        raise ValueError(f"pairwise diversity needs at least 2 samples, got {n}")
    i = rng.integers(0, n, n_pairs)
    j = (i + rng.integers(1, n, n_pairs)) % n
    return i, j


def mean_pairwise(dist: PerceptualDistance, images: np.ndarray | torch.Tensor, n_pairs: int, seed: int,
                  labels: np.ndarray | None = None) -> float:
    """Mean distance between random pairs of ``images``; with ``labels``, pairs within each class
    (``n_pairs`` per class) and the mean over classes."""
    images = torch.as_tensor(images)
    rng = np.random.default_rng(seed)
    if labels is None:
        i, j = random_pairs(len(images), n_pairs, rng)
        return float(dist(images[i], images[j]).mean())
    labels = np.asarray(labels)
    per_class = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        i, j = random_pairs(len(idx), n_pairs, rng)
        per_class.append(float(dist(images[idx[i]], images[idx[j]]).mean()))
    return float(np.mean(per_class))


def diversity_scores(dist: PerceptualDistance, fake: np.ndarray | torch.Tensor, real: np.ndarray | torch.Tensor,
                     n_pairs: int, seed: int, fake_labels: np.ndarray | None = None,
                     real_labels: np.ndarray | None = None) -> dict[str, float]:
    """``<key>_diversity`` of the generated and of the real images and their ratio (fake / real: a
    collapsed generator is well below 1); with labels for both, the same within classes
    (``<key>_diversity_class``...)."""
    k = dist.key

    def ratio(f: float, r: float) -> float:
        if r <= 0:
            raise ValueError(f"the real images are all alike ({dist.name} diversity 0): no diversity ratio")
        return f / r
    f, r = mean_pairwise(dist, fake, n_pairs, seed), mean_pairwise(dist, real, n_pairs, seed)
    out = {f"{k}_diversity": f, f"{k}_diversity_real": r, f"{k}_diversity_ratio": ratio(f, r)}
    if fake_labels is not None and real_labels is not None:
        fc = mean_pairwise(dist, fake, n_pairs, seed, fake_labels)
        rc = mean_pairwise(dist, real, n_pairs, seed, real_labels)
        out.update({f"{k}_diversity_class": fc, f"{k}_diversity_class_real": rc,
                    f"{k}_diversity_class_ratio": ratio(fc, rc)})
    return out


# The diversity of the samples over that of real images (mean pairwise distance; < 1: less varied),
# by distance: the classifier's (uncalibrated, not LPIPS) and LPIPS on each backbone.
for _key, _label in (("clfpips", "clfpips"), ("lpips_alex", "LPIPS-alex"), ("lpips_vgg", "LPIPS-vgg")):
    score(f"{_key}_diversity_ratio", f"diversity ({_label})", None, ".2f", summary=_key != "lpips_vgg",
          description=f"mean pairwise {_label} distance of the samples over that of real images (< 1: less varied)")
