"""Per-image attributes measured from the pixels of grey images (digits): what prepare stores
beside each image for multi-input conditioning, and what evaluate measures again on generated
images to see whether a requested attribute was obeyed.

Every measure takes ink intensities ``a`` in [0, 1] of shape (N, H, W) (or (N, 1, H, W)) and
returns one float per image; pixel coordinates are x to the right, y downwards, in pixels.  With
the intensity-weighted moments ``m = sum a``, ``mu_pq = sum a (x - cx)^p (y - cy)^q / m``:

* ``thickness``: stroke width in pixels, ``2 A / P`` of the binarised ink (a > 0.5), where ``A``
  is the ink area and ``P`` the number of ink / background pixel edges (4-neighbours).  A stroke of
  length L and width t has A = L t and P = 2 (L + t), so 2A/P -> t for long strokes.
* ``slant``: ``-mu_11 / mu_02``, the horizontal shift of the ink per pixel upwards (the shear
  that deskewing MNIST removes); > 0 leans right, like ``/``.
* ``width`` / ``height``: ``sqrt(12 mu_20)`` / ``sqrt(12 mu_02)``, the side of a uniform bar with
  the ink's spread along x / y (a solid w-pixel run measures sqrt(w^2 - 1)).

Nothing here is invented: each value is computed from the image it belongs to.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..registry import Registry

Measure = Callable[[np.ndarray], np.ndarray]
ATTRIBUTES: Registry[Measure] = Registry("image attribute")


def unit_ink(images: np.ndarray) -> np.ndarray:
    """uint8 images in [0, 255] or floats in model range [-1, 1] -> float64 (N, H, W) in [0, 1]."""
    a = np.asarray(images)
    if a.ndim == 4:
        if a.shape[1] != 1:
            raise ValueError(f"attributes are measured on grey images (N, 1, H, W), got shape {a.shape}")
        a = a[:, 0]
    if a.dtype == np.uint8:
        return a.astype(np.float64) / 255.0
    return np.clip((a.astype(np.float64) + 1.0) / 2.0, 0.0, 1.0)


def _moments(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mu_20, mu_02, mu_11) per image; an image without ink gives zeros."""
    _, h, w = a.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float64)
    m = a.sum((1, 2))
    safe = np.where(m > 0, m, 1.0)
    cx = (a * xs).sum((1, 2)) / safe
    cy = (a * ys).sum((1, 2)) / safe
    dx = xs[None] - cx[:, None, None]
    dy = ys[None] - cy[:, None, None]
    mu20 = (a * dx * dx).sum((1, 2)) / safe
    mu02 = (a * dy * dy).sum((1, 2)) / safe
    mu11 = (a * dx * dy).sum((1, 2)) / safe
    return mu20, mu02, mu11


def thickness(a: np.ndarray) -> np.ndarray:
    ink = a > 0.5
    area = ink.sum((1, 2)).astype(np.float64)
    padded = np.pad(ink, ((0, 0), (1, 1), (1, 1)))
    edges = ((padded[:, 1:, :] != padded[:, :-1, :]).sum((1, 2))
             + (padded[:, :, 1:] != padded[:, :, :-1]).sum((1, 2))).astype(np.float64)
    return np.where(edges > 0, 2.0 * area / np.where(edges > 0, edges, 1.0), 0.0)


def slant(a: np.ndarray) -> np.ndarray:
    _, mu02, mu11 = _moments(a)
    return np.where(mu02 > 0, -mu11 / np.where(mu02 > 0, mu02, 1.0), 0.0)


def width(a: np.ndarray) -> np.ndarray:
    return np.sqrt(12.0 * _moments(a)[0])


def height(a: np.ndarray) -> np.ndarray:
    return np.sqrt(12.0 * _moments(a)[1])


ATTRIBUTES.register("thickness", thickness, "stroke width in pixels: 2 x ink area / ink perimeter")
ATTRIBUTES.register("slant", slant, "shear of the ink, -mu11/mu02 (> 0 leans right)")
ATTRIBUTES.register("width", width, "horizontal spread of the ink, sqrt(12 mu20) pixels")
ATTRIBUTES.register("height", height, "vertical spread of the ink, sqrt(12 mu02) pixels")


def measure(images: np.ndarray, names: list[str] | tuple[str, ...] | None = None,
            batch_size: int = 2048) -> dict[str, np.ndarray]:
    """The named attributes (all registered ones by default) of each image, float32 (N,)."""
    names = list(ATTRIBUTES.names()) if names is None else list(names)
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for i in range(0, len(images), batch_size):
        a = unit_ink(images[i:i + batch_size])
        for k in names:
            out[k].append(ATTRIBUTES.get(k)(a))
    return {k: (np.concatenate(v) if v else np.zeros(0)).astype(np.float32) for k, v in out.items()}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's correlation of two equally long series; nan when either is constant."""
    x = np.asarray(x, np.float64).ravel()
    y = np.asarray(y, np.float64).ravel()
    if x.shape != y.shape or len(x) < 2:
        raise ValueError(f"pearson needs two series of the same length >= 2, got {x.shape} and {y.shape}")
    dx, dy = x - x.mean(), y - y.mean()
    den = np.sqrt((dx * dx).sum() * (dy * dy).sum())
    return float((dx * dy).sum() / den) if den > 0 else float("nan")


def agreement(asked: np.ndarray, measured: np.ndarray) -> float:
    """How well a measured attribute follows the requested one: Pearson's r, 0 when either is
    constant (a constant attribute follows no request)."""
    r = pearson(asked, measured)
    return 0.0 if np.isnan(r) else r
