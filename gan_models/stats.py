"""Statistics over seeds: is a difference between two variants real, or seed noise?

Plain functions on arrays of one value per seed (a metric of a variant over its seeds; paired
arrays for two variants trained with the same seeds):

* ``summary``: n, mean, standard deviation, median and a 95% confidence interval of the mean by
  the BCa bootstrap (bias-corrected and accelerated, Efron 1987; seeded, 10,000 resamples);
* ``wilcoxon``: the exact two-sided Wilcoxon signed-rank test of paired values (every sign
  assignment enumerated: exact at the 3-10 seeds GAN studies afford), with the matched-pairs
  rank-biserial correlation as its effect size;
* ``holm``: Holm's step-down correction of p-values for the number of comparisons;
* ``expected_best``: Lucic et al. (2018)'s expected best score after k runs, from the order
  statistics of the observed runs (k drawn without replacement);
* ``band``: a metric over training steps, mean and bootstrap interval across seeds per step.

Nothing here knows where the values come from; the study report (``tasks.study``)
feeds it the metrics files of every (variant, seed) cell.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from itertools import product

import numpy as np
from scipy.special import ndtr, ndtri

CONFIDENCE = 0.95
N_RESAMPLES = 10_000
CI_METHOD = "BCa bootstrap of the mean (10,000 resamples, seeded)"


@dataclass(frozen=True)
class Summary:
    n: int
    mean: float
    std: float  # sample standard deviation (ddof 1); NaN for one value
    median: float
    ci_low: float  # the confidence interval of the mean (NaN below 2 values)
    ci_high: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _values(x) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0 or not np.isfinite(a).all():
        raise ValueError(f"statistics need at least one finite value per seed, got {list(a)}")
    return a


def bootstrap_ci(x, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES,
                 seed: int = 0) -> tuple[float, float]:
    """The BCa bootstrap interval of the mean of ``x`` (Efron & Tibshirani 1993, ch. 14):
    percentiles of the resampled means, moved by the bias correction z0 (the share of resampled
    means below the observed one) and the acceleration a (from the jackknife means).  Resamples
    drawn from ``numpy.random.default_rng(seed)``; all values equal: the value itself."""
    x = _values(x)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    theta = x.mean()
    if np.ptp(x) == 0:
        return float(theta), float(theta)
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, n, (n_resamples, n))].mean(1)
    alpha = (1 - confidence) / 2
    z0 = ndtri(np.mean(means < theta) + 0.5 * np.mean(means == theta))
    jack = (x.sum() - x) / (n - 1)
    d = jack.mean() - jack
    a = (d ** 3).sum() / (6 * ((d ** 2).sum()) ** 1.5) if (d ** 2).sum() > 0 else 0.0
    z = ndtri(np.array([alpha, 1 - alpha]))
    q = ndtr(z0 + (z0 + z) / (1 - a * (z0 + z)))
    lo, hi = np.quantile(means, q)
    return float(lo), float(hi)


def summary(x, confidence: float = CONFIDENCE, n_resamples: int = N_RESAMPLES, seed: int = 0) -> Summary:
    x = _values(x)
    lo, hi = bootstrap_ci(x, confidence, n_resamples, seed)
    return Summary(len(x), float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else math.nan,
                   float(np.median(x)), lo, hi)


def _ranks(a: np.ndarray) -> np.ndarray:
    """Ranks 1..n, ties given their mean rank."""
    order = np.argsort(a, kind="mergesort")
    ranks = np.empty(len(a))
    sorted_a = a[order]
    i = 0
    while i < len(a):
        j = i
        while j + 1 < len(a) and sorted_a[j + 1] == sorted_a[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


@dataclass(frozen=True)
class PairedTest:
    n: int  # pairs with a non-zero difference
    w_plus: float  # sum of the ranks of the positive differences (a - b > 0)
    p_value: float  # exact, two-sided
    rank_biserial: float  # (W+ - W-) / (W+ + W-) in [-1, 1]: +1 when a > b in every pair
    mean_difference: float  # mean of a - b over all pairs


def wilcoxon(a, b) -> PairedTest:
    """The exact two-sided Wilcoxon signed-rank test of the pairs (a_i, b_i): the signed ranks of
    the non-zero differences against all 2^n equally likely sign assignments (zero differences
    are dropped, as in Wilcoxon's original; tied magnitudes take their mean rank)."""
    a, b = _values(a), _values(b)
    if a.shape != b.shape:
        raise ValueError(f"paired values need the same seeds on both sides, got {len(a)} and {len(b)}")
    d = a - b
    nz = d[d != 0]
    n = len(nz)
    if n == 0:
        return PairedTest(0, 0.0, 1.0, 0.0, float(d.mean()))
    if n > 20:
        raise ValueError(f"the exact test enumerates 2^n sign assignments; {n} pairs is too many")
    r = _ranks(np.abs(nz))
    w_plus = float(r[nz > 0].sum())
    total = float(r.sum())
    signs = np.array(list(product((0.0, 1.0), repeat=n)))
    w = signs @ r
    centre = total / 2
    extreme = np.abs(w - centre) >= abs(w_plus - centre) - 1e-9
    p = float(extreme.mean())
    return PairedTest(n, w_plus, min(1.0, p), (w_plus - (total - w_plus)) / total, float(d.mean()))


def holm(p_values) -> np.ndarray:
    """Holm's step-down adjusted p-values: sorted ascending, p_(i) x (m - i + 1), made
    non-decreasing, capped at 1; returned in the input order."""
    p = np.asarray(p_values, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="mergesort")
    adjusted = np.maximum.accumulate(p[order] * (m - np.arange(m)))
    out = np.empty(m)
    out[order] = np.minimum(adjusted, 1.0)
    return out


def expected_best(x, k: int, lower_is_better: bool = True) -> float:
    """The expected best of k runs drawn without replacement from the n observed ones:
    sum_i x_(i) C(n - i, k - 1) / C(n, k) over the values sorted best first (x_(1) the best)."""
    x = np.sort(_values(x))
    if not lower_is_better:
        x = x[::-1]
    n = len(x)
    if not 1 <= k <= n:
        raise ValueError(f"k must be in 1..{n} (the runs observed), got {k}")
    weights = np.array([math.comb(n - i, k - 1) for i in range(1, n + 1)]) / math.comb(n, k)
    return float(weights @ x)


def band(curves: list[tuple[list[int], list[float]]], confidence: float = CONFIDENCE,
         n_resamples: int = 2000, seed: int = 0) -> dict[str, list[float]]:
    """A metric over training steps across seeds: at every step all seeds have, the mean and the
    bootstrap interval of the mean.  ``curves``: (steps, values) per seed."""
    common = sorted(set.intersection(*(set(s) for s, _ in curves))) if curves else []
    by_seed = [dict(zip(s, v)) for s, v in curves]
    out: dict[str, list[float]] = {"step": [], "mean": [], "low": [], "high": []}
    for step in common:
        vals = [c[step] for c in by_seed]
        lo, hi = bootstrap_ci(vals, confidence, n_resamples, seed) if len(vals) > 1 else (math.nan, math.nan)
        out["step"].append(step)
        out["mean"].append(float(np.mean(vals)))
        out["low"].append(lo)
        out["high"].append(hi)
    return out
