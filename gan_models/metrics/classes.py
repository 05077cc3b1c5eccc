"""Scores read from a classifier's logits and from known modes: the Inception score, the class
histogram of generated samples, mode coverage (Stacked MNIST, the 2D mixtures)."""

from __future__ import annotations

import math

import numpy as np

from .base import score


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = logits - logits.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def inception_score(logits: np.ndarray, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))) on ``splits`` equal consecutive parts; (mean, std) over parts."""
    logits = np.asarray(logits, dtype=np.float64)
    n = logits.shape[0]
    if splits < 1 or n < splits:
        raise ValueError(f"inception_score needs at least `splits` ({splits}) samples, got {n}")
    p = _softmax(logits)
    size = n // splits
    scores = []
    for i in range(splits):
        part = p[i * size:(i + 1) * size]
        py = part.mean(0, keepdims=True)
        kl = (part * (np.log(part + 1e-30) - np.log(py + 1e-30))).sum(1).mean()
        scores.append(np.exp(kl))
    return float(np.mean(scores)), float(np.std(scores))


def class_histogram_metrics(logits: np.ndarray, real_class_freq: np.ndarray,
                            confident: float = 0.9) -> dict[str, float]:
    """Mode metrics for labelled images from a classifier's logits on generated samples.

    classes_covered: classes predicted for at least one sample; kl_class_hist: KL(generated
    class histogram || real class frequencies); confident_fraction: share of samples whose top
    class probability is >= ``confident`` (a proxy for "recognisable"); max_class_fraction: the
    largest share of samples predicted as one class (1/K when balanced, 1 when collapsed).
    """
    k = len(real_class_freq)
    if logits.shape[1] != k:
        raise ValueError(f"class_histogram_metrics: logits have {logits.shape[1]} classes, the data {k}; "
                         "use the logits of the data set's own classifier")
    p = _softmax(np.asarray(logits, dtype=np.float64))
    pred = p.argmax(1)
    hist = np.bincount(pred, minlength=k) / len(pred)
    q = np.asarray(real_class_freq, dtype=np.float64)
    nz = hist > 0
    return {"classes_covered": float(nz.sum()),
            "kl_class_hist": float((hist[nz] * np.log(hist[nz] / q[nz])).sum()),
            "confident_fraction": float((p.max(1) >= confident).mean()),
            "max_class_fraction": float(hist.max())}


def mode_histogram_metrics(modes: np.ndarray, n_modes: int) -> dict[str, float]:
    """Mode coverage of samples whose mode is known (Stacked MNIST: the three digits a classifier
    reads, as a number in [0, n_modes)), against a uniform true distribution as in Metz et al.
    2017, VEEGAN (Table 2) and PacGAN (Table 3): modes_covered = modes with at least one sample;
    reverse_kl = KL(generated mode histogram || uniform) = log(n_modes) - H(histogram)."""
    modes = np.asarray(modes, dtype=np.int64)
    if modes.ndim != 1 or not len(modes) or modes.min() < 0 or modes.max() >= n_modes:
        raise ValueError(f"modes must be a non-empty 1-d array of integers in [0, {n_modes})")
    hist = np.bincount(modes, minlength=n_modes) / len(modes)
    nz = hist[hist > 0]
    return {"modes_covered": float(len(nz)), "reverse_kl": float((nz * np.log(nz * n_modes)).sum())}


def mode_metrics(points: np.ndarray, centers: np.ndarray, std: float,
                 min_count: int = 1) -> dict[str, float]:
    """The PacGAN / VEEGAN protocol for 2D mixtures.

    Each sample belongs to its nearest centre; it is *high quality* when within 3 std of it.  A
    mode is covered when at least ``min_count`` high-quality samples belong to it.  reverse_kl
    is KL(generated mode histogram || uniform) over all samples; reverse_kl_high_quality the same
    over the high-quality samples only, as PacGAN's code histograms them; with no high-quality
    sample at all it is log K, the value of a total collapse onto one mode (finite, so it averages).
    """
    points = np.asarray(points, dtype=np.float64)
    centers = np.asarray(centers, dtype=np.float64)
    d = np.linalg.norm(points[:, None, :] - centers[None, :, :], axis=2)  # (N, K)
    nearest = d.argmin(1)
    hq = d[np.arange(len(points)), nearest] <= 3 * std
    k = len(centers)
    counts_hq = np.bincount(nearest[hq], minlength=k)
    hist = np.bincount(nearest, minlength=k) / len(points)
    return {"modes_covered": float((counts_hq >= min_count).sum()),
            "high_quality_fraction": float(hq.mean()),
            "reverse_kl": _kl_to_uniform(hist),
            "reverse_kl_high_quality": _kl_to_uniform(counts_hq / counts_hq.sum()) if counts_hq.any() else math.log(k)}


def _kl_to_uniform(p: np.ndarray) -> float:
    """KL(p || uniform over len(p)) = sum p log(p K), with 0 log 0 = 0."""
    nz = p > 0
    return float((p[nz] * np.log(p[nz] * len(p))).sum())



score("extractor_accuracy", "clf. accuracy", None, ".1%", summary=True,
      description="held-out accuracy of the classifier the features come from: how much its FID can say")
score("is_mean", "IS", "higher", ".3g", summary=True, description="Inception score on the extractor's logits")
score("is_std", "IS std", None, ".2g", table=False)
score("modes_covered", "modes", "higher", ".3g", summary=True)
score("high_quality_fraction", "HQ %", "higher", ".1%", summary=True)
score("reverse_kl", "reverse KL", "lower", ".3g", summary=True)
score("reverse_kl_high_quality", "reverse KL (HQ)", "lower", ".3g", table=False)
score("classes_covered", "classes", "higher", ".0f", summary=True)
score("kl_class_hist", "class KL", "lower", ".3g", table=False)
score("confident_fraction", "confident", "higher", ".1%", summary=True,
      description="share of samples the classifier assigns a class with p >= 0.9")
score("max_class_fraction", "largest class", "lower", ".1%", table=False)
# The same on the independent classifier (another architecture and seed, which no recipe trains against).
score("independent_fid", "FID (indep.)", "lower", ".4g")
score("independent_classes_covered", "classes (indep.)", "higher", ".0f", table=False)
score("independent_kl_class_hist", "class KL (indep.)", "lower", ".3g", table=False)
score("independent_confident_fraction", "confident (indep.)", "higher", ".1%", summary=True)
score("independent_max_class_fraction", "largest class (indep.)", "lower", ".1%", table=False)
