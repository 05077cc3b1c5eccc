"""Sample-quality metrics on plain arrays (features, logits, points).

FID is computed in float64 without ``scipy.linalg.sqrtm``:  with S = sqrt(Sigma_r) (symmetric,
from one eigen-decomposition that is cached with the reference statistics),

    tr sqrt(Sigma_r Sigma_g) = sum_i sqrt(lambda_i(S Sigma_g S))

because Sigma_r Sigma_g and S Sigma_g S share their non-zero eigenvalues and the latter is
symmetric positive semi-definite.  A new evaluation then costs one ``eigvalsh``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ReferenceStats:
    """Mean, covariance and the covariance's symmetric square root of a feature set."""

    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    sqrt_sigma: np.ndarray  # (d, d), symmetric, sqrt_sigma @ sqrt_sigma == sigma
    n: int

    def save(self, path: str | Path) -> None:
        from .data import save_arrays

        save_arrays(path, mu=self.mu, sigma=self.sigma, sqrt_sigma=self.sqrt_sigma, n=np.array(self.n))

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStats":
        from .data import load_arrays

        a = load_arrays(path)
        try:
            stats = cls(a["mu"], a["sigma"], a["sqrt_sigma"], int(a["n"]))
        except KeyError as e:
            raise ValueError(f"{path} is not a reference-statistics file (missing {e})") from e
        d = stats.mu.shape[0]
        if stats.sigma.shape != (d, d) or stats.sqrt_sigma.shape != (d, d):
            raise ValueError(f"{path}: inconsistent shapes {stats.mu.shape}, {stats.sigma.shape}")
        return stats


def _check_features(x: np.ndarray, what: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{what} must be a 2-D array (samples, features), got shape {x.shape}")
    if x.shape[0] < 2:
        raise ValueError(f"{what} needs at least 2 samples for a covariance, got {x.shape[0]}")
    if not np.isfinite(x).all():
        raise ValueError(f"{what} contains NaN or Inf")
    return x


def _mean_cov(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu = x.mean(0)
    xc = x - mu
    return mu, (xc.T @ xc) / (x.shape[0] - 1)


def _sym_sqrt(sigma: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def reference_stats(features: np.ndarray) -> ReferenceStats:
    x = _check_features(features, "reference features")
    mu, sigma = _mean_cov(x)
    return ReferenceStats(mu, sigma, _sym_sqrt(sigma), x.shape[0])


def frechet_distance(ref: ReferenceStats, mu: np.ndarray, sigma: np.ndarray) -> float:
    """||mu_r - mu||^2 + tr(Sigma_r) + tr(Sigma) - 2 tr sqrt(Sigma_r Sigma)."""
    if mu.shape != ref.mu.shape:
        raise ValueError(f"feature dimensions differ: reference {ref.mu.shape[0]}, generated {mu.shape[0]}")
    m = ref.sqrt_sigma @ sigma @ ref.sqrt_sigma
    eig = np.linalg.eigvalsh((m + m.T) / 2)  # symmetric up to rounding
    tr_covmean = np.sqrt(np.clip(eig, 0.0, None)).sum()
    diff = ref.mu - mu
    value = float(diff @ diff + np.trace(ref.sigma) + np.trace(sigma) - 2.0 * tr_covmean)
    return max(value, 0.0)  # rounding can give -1e-12 for identical sets


def fid(real: np.ndarray | ReferenceStats, fake: np.ndarray | ReferenceStats) -> float:
    """Fréchet distance between two feature sets (either side may be cached statistics)."""
    ref = real if isinstance(real, ReferenceStats) else reference_stats(real)
    if isinstance(fake, ReferenceStats):
        return frechet_distance(ref, fake.mu, fake.sigma)
    mu, sigma = _mean_cov(_check_features(fake, "generated features"))
    return frechet_distance(ref, mu, sigma)


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


# ----------------------------------------------------------------------------------------------
# KID, precision/recall, density/coverage.


def _poly_kernel(x: np.ndarray, y: np.ndarray, degree: int, gamma: float, coef: float) -> np.ndarray:
    return (x @ y.T * gamma + coef) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, gamma: float | None = None,
                  coef: float = 1.0) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(a, b) = (gamma a.b + coef)^degree, equal sizes."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"mmd2_unbiased needs two sets of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    gamma = 1.0 / x.shape[1] if gamma is None else gamma
    kxx = _poly_kernel(x, x, degree, gamma, coef)
    kyy = _poly_kernel(y, y, degree, gamma, coef)
    kxy = _poly_kernel(x, y, degree, gamma, coef)
    return float((kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1)) - 2 * kxy.mean())


def kid(real: np.ndarray, fake: np.ndarray, n_subsets: int = 100, subset_size: int = 1000, degree: int = 3,
        gamma: float | None = None, coef: float = 1.0, seed: int = 0) -> tuple[float, float]:
    """Kernel Inception Distance (Binkowski et al. 2018) as torch-fidelity computes it: mean and
    std over ``n_subsets`` random subsets (without replacement) of min(subset_size, N) samples of
    each side, of the unbiased MMD^2 with a cubic polynomial kernel (gamma 1/d, coef 1)."""
    real = _check_features(real, "real features")
    fake = _check_features(fake, "generated features")
    m = min(subset_size, real.shape[0], fake.shape[0])
    rng = np.random.RandomState(seed)
    vals = np.array([mmd2_unbiased(real[rng.choice(len(real), m, replace=False)],
                                   fake[rng.choice(len(fake), m, replace=False)], degree, gamma, coef)
                     for _ in range(n_subsets)])
    return float(vals.mean()), float(vals.std())


def _pairwise(a: np.ndarray, b: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Euclidean distances (len(a), len(b)) in float64, chunked to bound memory."""
    b2 = (b * b).sum(1)
    out = np.empty((len(a), len(b)))
    for i in range(0, len(a), chunk):
        x = a[i:i + chunk]
        d2 = (x * x).sum(1)[:, None] + b2[None, :] - 2 * x @ b.T
        out[i:i + chunk] = np.sqrt(np.clip(d2, 0, None))
    return out


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each sample to its k-th nearest neighbour in the same set (itself excluded)."""
    if len(x) <= k:
        raise ValueError(f"k-NN radii need more than k={k} samples, got {len(x)}")
    d = _pairwise(x, x)
    return np.partition(d, k, axis=1)[:, k]  # index 0 is the sample itself (distance 0)


def precision_recall(real: np.ndarray, fake: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019): a sample is inside the other set's
    manifold when it lies within the k-NN radius of at least one of that set's samples."""
    real = _check_features(real, "real features")
    fake = _check_features(fake, "generated features")
    r_real, r_fake = _knn_radii(real, k), _knn_radii(fake, k)
    d = _pairwise(fake, real)  # (F, R)
    precision = float((d <= r_real[None, :]).any(1).mean())
    recall = float((d.T <= r_fake[None, :]).any(1).mean())
    return precision, recall


def density_coverage(real: np.ndarray, fake: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Density and coverage (Naeem et al. 2020) with k-NN balls around the real samples."""
    real = _check_features(real, "real features")
    fake = _check_features(fake, "generated features")
    r_real = _knn_radii(real, k)
    inside = _pairwise(real, fake) <= r_real[:, None]  # (R, F)
    density = float(inside.sum() / (k * fake.shape[0]))
    coverage = float(inside.any(1).mean())
    return density, coverage


# -- the metric registry ------------------------------------------------------------------------------
# Metrics of two feature sets (real (N, D), generated (M, D), float64, at most 5,000 rows a side),
# computed by the evaluate stage for each name in evaluate.metrics.  A metric returns a mapping of
# score names to floats (prefix them with the metric's name: they share metrics/<variant>.json
# with every other metric).  Plugins register their own with the same call.
from .registry import Registry  # noqa: E402

METRICS: Registry = Registry("metric", ("real", "fake", "seed"))
# Score names the scorer computes itself (FID, IS, the class histogram and mode metrics): a
# registered metric may not return them, or it would replace the score selection ranks by.
RESERVED_SCORES = frozenset({"fid", "fid_points", "is_mean", "is_std", "classes_covered", "kl_class_hist",
                             "confident_fraction", "max_class_fraction", "modes_covered", "high_quality_fraction", "reverse_kl",
                             "reverse_kl_high_quality", "step", "extractor", "n_samples", "score", "selected",
                             # translation (the evaluate stage's own scores)
                             "l1", "psnr", "ssim", "label_preservation", "cycle_l1_aba", "cycle_l1_bab",
                             "label_agreement",  # a conditional G's samples classified as the label asked for
                             "l1_ba", "psnr_ba", "ssim_ba",
                             # the independent classifier's (tasks.scoring.independent_scores)
                             *(f"independent_{k}" for k in ("fid", "classes_covered", "kl_class_hist",
                                                            "confident_fraction", "max_class_fraction"))})


def _kid_scores(real: np.ndarray, fake: np.ndarray, seed: int) -> dict[str, float]:
    mean, std = kid(real, fake, seed=seed)
    return {"kid_mean": mean, "kid_std": std}


def capped(real: np.ndarray, fake: np.ndarray, seed: int, cap: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cap`` rows of each (a seeded random subset): the k-NN metrics are quadratic in N."""
    rng = np.random.default_rng(seed)
    r = real[rng.choice(len(real), cap, replace=False)] if len(real) > cap else real
    f = fake[rng.choice(len(fake), cap, replace=False)] if len(fake) > cap else fake
    return r, f


def _pr_scores(real: np.ndarray, fake: np.ndarray, seed: int, k: int = 3) -> dict[str, float]:
    p, r = precision_recall(*capped(real, fake, seed), k=k)
    return {"precision": p, "recall": r}


def _dc_scores(real: np.ndarray, fake: np.ndarray, seed: int, k: int = 5) -> dict[str, float]:
    d, c = density_coverage(*capped(real, fake, seed), k=k)
    return {"density": d, "coverage": c}


METRICS.register("kid", _kid_scores, "kernel inception distance, cubic polynomial kernel, 100 subsets "
                 "(Binkowski et al. 2018): kid_mean, kid_std")
METRICS.register("precision_recall", _pr_scores, "improved precision and recall, k=3 (Kynkaanniemi et al. 2019)")
METRICS.register("density_coverage", _dc_scores, "density and coverage, k=5 (Naeem et al. 2020)")


def registered_metrics(names: list[str] | tuple[str, ...], real: np.ndarray, fake: np.ndarray,
                       seed: int) -> dict[str, float]:
    """The scores of each named metric on the full feature arrays; a metric that returns anything
    but names to numbers, or a score name another metric (or FID, IS, the class and mode metrics)
    already gives, raises ValueError naming it."""
    out: dict[str, float] = {}
    for name in names:
        scores = METRICS.get(name)(real=real, fake=fake, seed=seed)
        if not isinstance(scores, dict) or not all(isinstance(k, str) for k in scores):
            raise ValueError(f"metric {name!r} must return a mapping of score names to numbers, got {scores!r}")
        taken = sorted(set(scores) & (set(out) | RESERVED_SCORES))
        if taken:
            raise ValueError(f"metric {name!r} returns score(s) {taken} that another metric already gives; "
                             "prefix its score names with the metric's name")
        for k, v in scores.items():
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"metric {name!r}: score {k!r} is not a number: {v!r}") from None
    return out


# ----------------------------------------------------------------------------------------------
# Image-to-image translation against ground truth: (N, C, H, W) arrays, uint8 in [0, 255] or float
# in [0, 1]; each function averages a per-image value over the images.

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
