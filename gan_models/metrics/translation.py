"""Image-to-image translation against ground truth: (N, C, H, W) arrays, uint8 in [0, 255] or
float in [0, 1]; each function averages a per-image value over the images."""

from __future__ import annotations

import numpy as np

from .base import score

SSIM_SIGMA, SSIM_TRUNCATE, SSIM_K1, SSIM_K2 = 1.5, 3.5, 0.01, 0.03  # Wang et al. 2004 / skimage's Gaussian SSIM


def _unit_pair(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.asarray(x), np.asarray(y)
    if x.shape != y.shape or x.ndim != 4:
        raise ValueError(f"translation metrics need two (N, C, H, W) arrays of one shape, got {x.shape} and {y.shape}")
    unit = lambda a: a.astype(np.float64) / 255.0 if a.dtype == np.uint8 else a.astype(np.float64)  # noqa: E731
    return unit(x), unit(y)


def l1_error(x: np.ndarray, y: np.ndarray) -> float:
    """Mean absolute difference on the [0, 1] scale."""
    a, b = _unit_pair(x, y)
    return float(np.abs(a - b).mean())


def psnr(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Mean over images of 10 log10(data_range^2 / MSE); an identical image counts as 100 dB, so
    the mean stays finite."""
    a, b = _unit_pair(x, y)
    mse = ((a - b) ** 2).reshape(len(a), -1).mean(1)
    per = np.where(mse > 0, 10 * np.log10(data_range ** 2 / np.maximum(mse, 1e-300)), 100.0)
    return float(np.minimum(per, 100.0).mean())


def ssim(x: np.ndarray, y: np.ndarray, data_range: float = 1.0) -> float:
    """Mean over images of SSIM (Wang et al. 2004) with skimage's Gaussian settings: an 11x11
    window of sigma 1.5 (truncate 3.5, 'reflect' borders), K1 0.01, K2 0.03, population
    covariances, the per-pixel map averaged after cropping the 5-pixel border, channels averaged.
    Equals ``skimage.metrics.structural_similarity(a, b, data_range=1, gaussian_weights=True,
    sigma=1.5, use_sample_covariance=False, channel_axis=0)`` per image (tests/test_translation_nets.py)."""
    from scipy.ndimage import gaussian_filter

    a, b = _unit_pair(x, y)
    blur = lambda t: gaussian_filter(t, sigma=(0, 0, SSIM_SIGMA, SSIM_SIGMA), mode="reflect",  # noqa: E731
                                     truncate=SSIM_TRUNCATE)
    ua, ub = blur(a), blur(b)
    va, vb, cov = blur(a * a) - ua * ua, blur(b * b) - ub * ub, blur(a * b) - ua * ub
    c1, c2 = (SSIM_K1 * data_range) ** 2, (SSIM_K2 * data_range) ** 2
    s = ((2 * ua * ub + c1) * (2 * cov + c2)) / ((ua ** 2 + ub ** 2 + c1) * (va + vb + c2))
    pad = int(SSIM_TRUNCATE * SSIM_SIGMA + 0.5)  # (window - 1) / 2
    if min(a.shape[-2:]) <= 2 * pad:
        raise ValueError(f"SSIM needs images larger than {2 * pad + 1} px, got {a.shape[-2]}x{a.shape[-1]}")
    return float(s[..., pad:-pad, pad:-pad].mean(axis=(2, 3)).mean())


def label_preservation(logits: np.ndarray, labels: np.ndarray) -> float:
    """Share of images the classifier assigns ``labels``: a translation's input labels (label
    preservation), or the classes a conditional generator was asked for (label agreement)."""
    logits, labels = np.asarray(logits), np.asarray(labels)
    if len(logits) != len(labels):
        raise ValueError(f"{len(logits)} logits rows for {len(labels)} labels")
    return float((logits.argmax(1) == labels).mean())


score("l1", "L1", "lower", ".4f", summary=True, description="mean absolute error to the ground truth, [0, 1] scale")
score("psnr", "PSNR", "higher", ".2f", summary=True)
score("ssim", "SSIM", "higher", ".3f", summary=True)
score("label_preservation", "label kept", "higher", ".1%", summary=True,
      description="share of translated images classified as their input's label")
score("cycle_l1_aba", "cycle L1", "lower", ".4f", summary=True, description="CycleGAN: |G_ba(G_ab(a)) - a|")
score("cycle_l1_bab", "cycle L1 (B)", "lower", ".4f", table=False)
score("l1_ba", "L1 (B->A)", "lower", ".4f", table=False)
score("psnr_ba", "PSNR (B->A)", "higher", ".2f", table=False)
score("ssim_ba", "SSIM (B->A)", "higher", ".3f", table=False)
