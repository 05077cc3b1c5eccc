"""Distances between two feature sets: FID, KID, precision/recall, density/coverage.

FID is computed in float64 without ``scipy.linalg.sqrtm``:  with S = sqrt(Sigma_r) (symmetric,
from one eigen-decomposition that is cached with the reference statistics),

    tr sqrt(Sigma_r Sigma_g) = sum_i sqrt(lambda_i(S Sigma_g S))

because Sigma_r Sigma_g and S Sigma_g S share their non-zero eigenvalues and the latter is
symmetric positive semi-definite.  A new evaluation then costs one ``eigvalsh``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .base import METRICS, capped, score


@dataclass(frozen=True)
class ReferenceStats:
    """Mean, covariance and the covariance's symmetric square root of a feature set."""

    mu: np.ndarray  # (d,)
    sigma: np.ndarray  # (d, d)
    sqrt_sigma: np.ndarray  # (d, d), symmetric, sqrt_sigma @ sqrt_sigma == sigma
    n: int

    def save(self, path: str | Path) -> None:
        from ..data.arrays import save_arrays

        save_arrays(path, mu=self.mu, sigma=self.sigma, sqrt_sigma=self.sqrt_sigma, n=np.array(self.n))

    @classmethod
    def load(cls, path: str | Path) -> "ReferenceStats":
        from ..data.arrays import load_arrays

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



def _kid_scores(real: np.ndarray, fake: np.ndarray, seed: int) -> dict[str, float]:
    mean, std = kid(real, fake, seed=seed)
    return {"kid_mean": mean, "kid_std": std}



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



score("fid", "FID", "lower", ".4g", summary=True, description="Frechet distance of the features (Heusel et al. 2017)")
score("fid_points", "FID (points)", "lower", ".4g", description="Frechet distance on the raw 2D coordinates")
score("kid_mean", "KID", "lower", ".4g", metric="kid")
score("kid_std", "KID std", None, ".2g", table=False, metric="kid")
score("precision", "precision", "higher", ".3f", metric="precision_recall")
score("recall", "recall", "higher", ".3f", metric="precision_recall")
score("density", "density", "higher", ".3f", metric="density_coverage")
score("coverage", "coverage", "higher", ".3f", metric="density_coverage")
