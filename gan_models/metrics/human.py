"""Human real-vs-fake scores: HYPE∞ (Zhou et al. 2019, "HYPE: A Benchmark for Human eYe
Perceptual Evaluation of Generative Models").

Evaluators see real and generated images one at a time, without a time limit, and answer "real"
or "fake".  HYPE∞ is their error rate over both kinds of image: 0.5 means the generated images
cannot be told from real ones (evaluators guess), 0 means every image was judged right, and above
0.5 the fakes look more real than the real images.  Its spread comes from a two-way bootstrap
that resamples evaluators and images with replacement.

Plain functions on arrays, one row per answer; nothing here knows where the answers came from.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from .base import score


def _codes(labels: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(distinct labels in sorted order, the code of each row in that order)."""
    uniq, codes = np.unique(np.asarray(labels), return_inverse=True)
    return uniq, codes.reshape(-1)


def _rate(errors: np.ndarray, mask: np.ndarray) -> float | None:
    n = int(mask.sum())
    return float(errors[mask].sum() / n) if n else None


def error_rates(is_real: np.ndarray, said_real: np.ndarray) -> dict[str, float | None]:
    """``hype_inf``: the share of answers that are wrong; ``fake_error``: the share of generated
    images judged real (the deception rate); ``real_error``: the share of real images judged fake.
    ``None`` where there is no answer of that kind."""
    is_real = np.asarray(is_real, dtype=bool)
    errors = is_real != np.asarray(said_real, dtype=bool)
    everything = np.ones_like(is_real)
    return {"hype_inf": _rate(errors, everything), "fake_error": _rate(errors, ~is_real),
            "real_error": _rate(errors, is_real)}


def bootstrap_indices(rng: np.random.Generator, n_replicates: int, n_evaluators: int,
                      n_images: int) -> tuple[np.ndarray, np.ndarray]:
    """The resampling of the two-way bootstrap: replicate ``b`` takes the evaluators
    ``ev[b]`` (``n_evaluators`` draws with replacement) and the images ``im[b]`` (``n_images``
    draws), every answer of a drawn evaluator on a drawn image counting once per pair of draws.
    ``ev`` is drawn first, then ``im``, so a fixed seed fixes both."""
    ev = rng.integers(0, n_evaluators, size=(n_replicates, n_evaluators))
    im = rng.integers(0, n_images, size=(n_replicates, n_images))
    return ev, im


def _draw_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """(B, k) drawn indices -> (B, n) how often each index was drawn."""
    counts = np.zeros((idx.shape[0], n))
    np.add.at(counts, (np.arange(idx.shape[0])[:, None], idx), 1.0)
    return counts


def hype_infinity(evaluator: Sequence[Any], image: Sequence[Any], is_real: Sequence[bool],
                  said_real: Sequence[bool], n_bootstrap: int = 10_000, seed: int = 0,
                  confidence: float = 0.95) -> dict[str, Any]:
    """HYPE∞ of a set of answers, one row each: who answered, which image, whether the image is
    real, whether they said real.

    Returns ``hype_inf`` (pooled over every answer), ``fake_error`` and ``real_error`` (over the
    answers on generated / real images), each with a ``*_ci`` [low, high] percentile interval at
    ``confidence`` from ``n_bootstrap`` two-way bootstrap replicates (``bootstrap_indices`` with
    ``np.random.default_rng(seed)``); ``per_evaluator`` (each evaluator's own rates and answer
    count), ``evaluator_mean`` (the mean of the evaluators' HYPE∞), ``n_answers``,
    ``n_evaluators`` and ``n_images`` (distinct ones answered).  Evaluators and images are indexed
    in sorted label order for the bootstrap.  An image must have one truth; a rate without answers
    of its kind is ``None``, and so is an interval.
    """
    is_real = np.asarray(is_real, dtype=bool).reshape(-1)
    said_real = np.asarray(said_real, dtype=bool).reshape(-1)
    n = is_real.shape[0]
    if not (len(evaluator) == len(image) == n == said_real.shape[0]):
        raise ValueError(f"evaluator, image, is_real and said_real must have one entry per answer; got lengths "
                         f"{len(evaluator)}, {len(image)}, {n}, {said_real.shape[0]}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be >= 1, got {n_bootstrap}")
    out: dict[str, Any] = {**error_rates(is_real, said_real), "n_answers": n,
                           "bootstrap": {"replicates": n_bootstrap, "seed": seed, "confidence": confidence,
                                         "resampled": "evaluators and images, with replacement"}}
    if n == 0:
        return {**out, "hype_inf_ci": None, "fake_error_ci": None, "real_error_ci": None, "per_evaluator": {},
                "evaluator_mean": None, "n_evaluators": 0, "n_images": 0}
    evaluators, e = _codes(evaluator)
    images, i = _codes(image)
    n_e, n_i = len(evaluators), len(images)
    image_real = np.zeros(n_i, dtype=bool)
    image_real[i] = is_real
    if (image_real[i] != is_real).any():
        bad = images[i[image_real[i] != is_real][0]]
        raise ValueError(f"image {bad!r} is marked both real and fake")
    errors = (is_real != said_real).astype(np.float64)
    per = {}
    for k, name in enumerate(evaluators):
        rows = e == k
        per[str(name)] = {**error_rates(is_real[rows], said_real[rows]), "n_answers": int(rows.sum())}
    out["per_evaluator"] = per
    out["evaluator_mean"] = float(np.mean([p["hype_inf"] for p in per.values()]))
    out["n_evaluators"], out["n_images"] = n_e, n_i

    # Errors and answers per (evaluator, image) cell: a replicate's error rate is then
    #   sum_e,i c_e c_i S_ei / sum_e,i c_e c_i N_ei,  c = how often each was drawn.
    S = np.zeros((n_e, n_i))
    N = np.zeros((n_e, n_i))
    np.add.at(S, (e, i), errors)
    np.add.at(N, (e, i), 1.0)
    ev, im = bootstrap_indices(np.random.default_rng(seed), n_bootstrap, n_e, n_i)
    columns = {"hype_inf": np.ones(n_i, dtype=bool), "fake_error": ~image_real, "real_error": image_real}
    stats = {k: np.empty(n_bootstrap) for k in columns}
    for lo in range(0, n_bootstrap, 1000):  # bounded memory: (1000, images) at a time
        ce, ci = _draw_counts(ev[lo:lo + 1000], n_e), _draw_counts(im[lo:lo + 1000], n_i)
        for k, cols in columns.items():
            num = ((ce @ (S * cols)) * ci).sum(axis=1)
            den = ((ce @ (N * cols)) * ci).sum(axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                stats[k][lo:lo + 1000] = num / den  # NaN: the replicate drew no answer of that kind
    tail = 100 * (1 - confidence) / 2
    for k, s in stats.items():
        ok = s[~np.isnan(s)]
        out[f"{k}_ci"] = [float(v) for v in np.percentile(ok, [tail, 100 - tail])] if ok.size else None
    return out


score("human/hype_inf", "HYPE∞ (human)", "higher", ".2f",
      description="python -m flows human-eval: the evaluators' error rate; 0.5 = indistinguishable")
