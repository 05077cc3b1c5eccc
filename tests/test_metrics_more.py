"""KID, precision/recall and density/coverage against brute-force references."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gan_models import metrics as M


def _brute_mmd2(x, y, gamma):
    k = lambda a, b: (gamma * float(a @ b) + 1.0) ** 3  # noqa: E731
    m = len(x)
    xx = sum(k(x[i], x[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i, j in itertools.permutations(range(m), 2)) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_mmd2_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1.0, size=(12, 4))
    assert M.mmd2_unbiased(x, y) == pytest.approx(_brute_mmd2(x, y, 1 / 4), rel=1e-10)


def test_kid_uses_seeded_subsets_and_is_unbiased():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(60, 5)), rng.normal(size=(60, 5))
    mean, std = M.kid(x, y, n_subsets=10, subset_size=20, seed=3)
    # Same subsets drawn by hand with the same generator.
    r = np.random.RandomState(3)
    vals = [M.mmd2_unbiased(x[r.choice(60, 20, replace=False)], y[r.choice(60, 20, replace=False)])
            for _ in range(10)]
    assert mean == pytest.approx(np.mean(vals), rel=1e-12) and std == pytest.approx(np.std(vals), rel=1e-12)
    # Same distribution: KID near 0 (it can be negative: unbiased); shifted: clearly positive.
    big_x, big_y = rng.normal(size=(2000, 5)), rng.normal(size=(2000, 5))
    assert abs(M.kid(big_x, big_y, n_subsets=20, subset_size=500)[0]) < 0.01
    assert M.kid(big_x, big_y + 1.0, n_subsets=20, subset_size=500)[0] > 0.1


def _brute_pr(real, fake, k):
    def radii(s):
        return np.array([sorted(np.linalg.norm(s - p, axis=1))[k] for p in s])
    rr, rf = radii(real), radii(fake)
    prec = np.mean([any(np.linalg.norm(f - r) <= rr[i] for i, r in enumerate(real)) for f in fake])
    rec = np.mean([any(np.linalg.norm(r - f) <= rf[j] for j, f in enumerate(fake)) for r in real])
    return prec, rec


def _brute_dc(real, fake, k):
    rr = np.array([sorted(np.linalg.norm(real - p, axis=1))[k] for p in real])
    inside = np.array([[np.linalg.norm(r - f) <= rr[i] for f in fake] for i, r in enumerate(real)])
    return inside.sum() / (k * len(fake)), inside.any(1).mean()


@pytest.mark.parametrize("shift", [0.0, 0.7, 3.0])
def test_precision_recall_density_coverage_match_brute_force(shift):
    rng = np.random.default_rng(2)
    real = rng.normal(size=(40, 3))
    fake = rng.normal(shift, 1.0, size=(30, 3))
    assert M.precision_recall(real, fake, k=3) == pytest.approx(_brute_pr(real, fake, 3), abs=1e-12)
    assert M.density_coverage(real, fake, k=5) == pytest.approx(_brute_dc(real, fake, 5), abs=1e-12)


def test_collapsed_generator_has_high_precision_but_low_recall_and_coverage():
    rng = np.random.default_rng(3)
    real = rng.normal(size=(300, 2))
    collapsed = real[:5].repeat(60, axis=0) + 1e-3 * rng.normal(size=(300, 2))
    p, r = M.precision_recall(real, collapsed)
    d, c = M.density_coverage(real, collapsed)
    assert p > 0.95 and r < 0.2 and c < 0.1


def test_classifier_features_do_not_depend_on_the_batch_size():
    import torch

    from gan_models.features.classifier import SmallCNN, features_and_logits

    torch.manual_seed(0)
    model = SmallCNN(1, 10).eval()
    x = torch.randint(0, 256, (37, 1, 28, 28), dtype=torch.uint8)
    f1, l1 = features_and_logits(model, x, batch_size=37)
    f2, l2 = features_and_logits(model, x, batch_size=5)
    np.testing.assert_allclose(f1, f2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(l1, l2, rtol=1e-5, atol=1e-6)
    # and FID on them is the same whichever batch size made them
    ref = M.reference_stats(np.random.default_rng(0).normal(size=(200, f1.shape[1])))
    assert M.fid(ref, f1) == pytest.approx(M.fid(ref, f2), rel=1e-6)
