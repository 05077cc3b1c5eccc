"""FID from 2048-d features: our eigenvalue method against pytorch-fid's (np.cov + scipy sqrtm).

Both compute FID between 10,000 generated feature vectors and cached real statistics, side by
side in one process, alternating A/B repeats.  Reported: median seconds of each, the ratio,
and the relative difference of the values (target: >= 8x end to end, >= 10x from statistics,
agreement to 1e-6).

    python benchmarks/fid_speed.py            # 10,000 x 2048, 3 repeats
    python benchmarks/fid_speed.py --quick    # 2,000 x 512, 2 repeats
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import scipy.linalg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gan_models import metrics as M  # noqa: E402


def pytorch_fid_way(mu1, sigma1, feats2):
    """pytorch-fid's calculate_frechet_distance after np.cov of the generated features."""
    mu2, sigma2 = feats2.mean(0), np.cov(feats2, rowvar=False)
    return pytorch_fid_distance(mu1, sigma1, mu2, sigma2)


def pytorch_fid_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    diff = mu1 - mu2
    covmean = scipy.linalg.sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = scipy.linalg.sqrtm((sigma1 + offset).dot(sigma2 + offset))
    covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def features(n, d, shift, seed):
    """Non-negative, correlated features like Inception pool3 (ReLU then average pool)."""
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d // 4, d)) / np.sqrt(d // 4)
    return np.abs(rng.normal(shift, 1.0, size=(n, d // 4)) @ mix)


def timed(fn):
    t = time.perf_counter()
    v = fn()
    return time.perf_counter() - t, v


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=2048)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    n, d, reps = (2000, 512, 2) if args.quick else (args.n, args.d, args.repeats)
    real, fake = features(n, d, 0.0, 0), features(n, d, 0.1, 1)
    ref = M.reference_stats(real)  # cached once per data version, as the prepare stage does
    mu_g, sig_g = fake.mean(0), np.cov(fake, rowvar=False)
    rows = {"end to end (features -> FID)": ([], []), "from statistics (distance only)": ([], [])}
    values = {}
    for _ in range(reps):  # interleaved A/B
        t, values["ours_e2e"] = timed(lambda: M.fid(ref, fake))
        rows["end to end (features -> FID)"][0].append(t)
        t, values["ref_e2e"] = timed(lambda: pytorch_fid_way(ref.mu, ref.sigma, fake))
        rows["end to end (features -> FID)"][1].append(t)
        t, values["ours_stats"] = timed(lambda: M.frechet_distance(ref, mu_g, sig_g))
        rows["from statistics (distance only)"][0].append(t)
        t, values["ref_stats"] = timed(lambda: pytorch_fid_distance(ref.mu, ref.sigma, mu_g, sig_g))
        rows["from statistics (distance only)"][1].append(t)
    print(f"FID, {n:,} generated x {d} features against cached real statistics, median of {reps}\n")
    print("| computation | ours (eigvalsh) s | pytorch-fid (sqrtm) s | speed-up |")
    print("|---|---|---|---|")
    for name, (ours, theirs) in rows.items():
        a, b = statistics.median(ours), statistics.median(theirs)
        print(f"| {name} | {a:.3f} | {b:.3f} | {b / a:.1f}x |")
    rel = abs(values["ours_e2e"] - values["ref_e2e"]) / abs(values["ref_e2e"])
    print(f"\nFID ours {values['ours_e2e']:.9g}, pytorch-fid {values['ref_e2e']:.9g}, relative difference {rel:.2e}")


if __name__ == "__main__":
    main()
