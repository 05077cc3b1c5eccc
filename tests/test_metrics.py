"""Metrics against independent references (scipy sqrtm, closed forms, brute force)."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import scipy.stats

from gan_models import metrics as M


def scipy_fid(x: np.ndarray, y: np.ndarray) -> float:
    """pytorch-fid's calculate_frechet_distance: np.cov + scipy.linalg.sqrtm."""
    mu1, mu2 = x.mean(0), y.mean(0)
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = scipy.linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize("n,d", [(500, 16), (300, 64)])
def test_fid_matches_scipy_sqrtm_full_rank(n, d):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))
    y = rng.normal(0.3, 1.2, size=(n, d)) @ rng.normal(size=(d, d))
    ref = scipy_fid(x, y)
    assert M.fid(x, y) == pytest.approx(ref, rel=1e-6)


def test_fid_matches_scipy_on_rank_deficient_features():
    # Fewer samples than dimensions and features living in a subspace: singular covariances.
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(5, 32))
    x = rng.normal(size=(20, 5)) @ basis
    y = rng.normal(0.5, 1.0, size=(20, 5)) @ basis
    ref = scipy_fid(x, y)
    ours = M.fid(x, y)
    assert np.isfinite(ours)
    assert ours == pytest.approx(ref, rel=1e-6)


def test_fid_of_a_set_with_itself_is_zero_and_fid_is_symmetric():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(400, 8)), rng.normal(1.0, 2.0, size=(400, 8))
    assert M.fid(x, x) == pytest.approx(0.0, abs=1e-9)
    assert M.fid(x, y) == pytest.approx(M.fid(y, x), rel=1e-9)
    assert M.fid(x, y) > 1.0


def test_fid_closed_form_for_gaussians():
    # Diagonal covariances: FID = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2 exactly (population stats).
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 1.0, 1.0])
    mu = np.array([1.0, 0.0, -2.0])
    ref = M.ReferenceStats(np.zeros(3), np.diag(a), np.diag(np.sqrt(a)), 1000)
    expected = mu @ mu + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert M.frechet_distance(ref, mu, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_cached_reference_stats_give_the_same_fid(tmp_path):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 10)), rng.normal(0.2, 1.0, size=(300, 10))
    stats = M.reference_stats(x)
    stats.save(tmp_path / "ref.npz")
    loaded = M.ReferenceStats.load(tmp_path / "ref.npz")
    assert M.fid(loaded, y) == pytest.approx(M.fid(x, y), rel=1e-12)
    np.testing.assert_allclose(loaded.sqrt_sigma @ loaded.sqrt_sigma, loaded.sigma, rtol=1e-8, atol=1e-10)


def test_fid_refuses_too_few_or_non_finite_samples():
    with pytest.raises(ValueError, match="at least 2 samples"):
        M.fid(np.zeros((1, 3)), np.zeros((5, 3)))
    bad = np.ones((5, 3))
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        M.fid(np.random.default_rng(0).normal(size=(5, 3)), bad)


def test_inception_score_closed_forms():
    k = 10
    # Uniform predictions: p(y|x) = p(y) -> KL = 0 -> IS = 1.
    mean, std = M.inception_score(np.zeros((100, k)), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-12)
    assert std == pytest.approx(0.0, abs=1e-12)
    # Confident and balanced: IS = number of classes.
    logits = np.full((1000, k), -1e4)
    logits[np.arange(1000), np.arange(1000) % k] = 0
    mean, _ = M.inception_score(logits, splits=10)
    assert mean == pytest.approx(k, rel=1e-9)
    # Confident but collapsed onto one class: IS = 1.
    logits = np.full((1000, k), -1e4)
    logits[:, 3] = 0
    assert M.inception_score(logits, splits=10)[0] == pytest.approx(1.0, rel=1e-9)


def test_inception_score_matches_direct_formula():
    rng = np.random.default_rng(4)
    logits = rng.normal(size=(200, 5)) * 3
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    scores = []
    for part in np.split(p, 4):
        py = part.mean(0)
        scores.append(np.exp(np.mean([np.sum(q * np.log(q / py)) for q in part])))
    mean, std = M.inception_score(logits, splits=4)
    assert mean == pytest.approx(np.mean(scores), rel=1e-9)
    assert std == pytest.approx(np.std(scores), rel=1e-9)


def test_mode_metrics_on_hand_built_samples():
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    std = 0.1
    # 3 samples at mode 0, 1 at mode 1 (all high quality), 1 far away nearest mode 3 (low quality).
    pts = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, -0.2], [10.0, 0.25], [8.0, 8.0]])
    m = M.mode_metrics(pts, centers, std)
    assert m["modes_covered"] == 2.0
    assert m["high_quality_fraction"] == pytest.approx(4 / 5)
    hist = np.array([3, 1, 0, 1]) / 5
    nz = hist > 0
    assert m["reverse_kl"] == pytest.approx(float((hist[nz] * np.log(hist[nz] * 4)).sum()), rel=1e-12)
    # Over the 4 high-quality samples only (PacGAN's histogram): (3, 1, 0, 0) / 4, i.e. 0.75 ln 3.
    assert m["reverse_kl_high_quality"] == pytest.approx(0.75 * np.log(3), rel=1e-12)
    assert m["reverse_kl_high_quality"] == pytest.approx(scipy.stats.entropy([3, 1, 0, 0], [1, 1, 1, 1]), rel=1e-12)
    # Uniform over the modes: reverse KL 0, everything covered.
    m = M.mode_metrics(centers, centers, std)
    assert m == {"modes_covered": 4.0, "high_quality_fraction": 1.0, "reverse_kl": pytest.approx(0.0, abs=1e-12),
                 "reverse_kl_high_quality": pytest.approx(0.0, abs=1e-12)}
    # No high-quality sample at all: nothing covered; counted as a total collapse (log K).
    m = M.mode_metrics(centers + 5.0, centers, std)
    assert m["modes_covered"] == 0.0 and m["high_quality_fraction"] == 0.0
    assert m["reverse_kl_high_quality"] == pytest.approx(np.log(4), rel=1e-12)


def test_class_histogram_metrics():
    logits = np.full((6, 3), -50.0)
    logits[[0, 1, 2, 3], [0, 0, 0, 1]] = 50.0
    logits[4:, 2] = 0.1  # classes 0, 0, 0, 1, 2, 2
    logits[5, 1] = 0.1  # the last sample is split between classes 1 and 2 -> not confident
    m = M.class_histogram_metrics(logits, np.array([1 / 3, 1 / 3, 1 / 3]))
    assert m["classes_covered"] == 3.0
    assert m["confident_fraction"] == pytest.approx(5 / 6)
    hist = np.array([3, 1, 2]) / 6  # argmax of a tie is the first index: sample 5 -> class 1
    hist = np.array([3, 2, 1]) / 6
    assert m["kl_class_hist"] == pytest.approx(float((hist * np.log(hist * 3)).sum()), rel=1e-12)
    assert m["max_class_fraction"] == pytest.approx(3 / 6)
    assert M.class_histogram_metrics(logits[:3], np.array([1 / 3] * 3))["max_class_fraction"] == 1.0  # collapsed


def test_fid_of_a_collapsed_generator_is_finite_and_exact():
    # Every generated sample identical: zero covariance. FID = |mu_r - x|^2 + tr(Sigma_r).
    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 6))
    fake = np.tile(rng.normal(size=(1, 6)), (50, 1))
    ref = M.reference_stats(real)
    expected = float(((ref.mu - fake[0]) ** 2).sum() + np.trace(ref.sigma))
    assert M.fid(ref, fake) == pytest.approx(expected, rel=1e-9)
