"""The metric registries: ``METRICS`` (what ``evaluate.metrics`` names: a function of two feature
sets) and ``SCORES`` (every value a metrics file holds: its label, which way is better, its
format).  Each module registers the scores it computes beside the code that computes them, and
every table (the run summary, ``flows compare``, the Prefect artifact, the registry's champion
choice) reads them from here, so a score is named once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..registry import Registry


@dataclass(frozen=True)
class Score:
    """What a score is, for the tables that show it."""

    label: str  # the column header
    better: str | None  # "lower", "higher", or None (a spread, a count that is not a quality)
    fmt: str = ".4g"  # format of a value in a table
    table: bool = True  # a column of the comparison tables (flows compare, the Prefect artifact)
    summary: bool = False  # also in the summary a `flows run` prints
    metric: str | None = None  # the METRICS entry that returns it; None: the scorer computes it itself


# Every score a metrics file can hold, in table order (registration order).
SCORES: Registry[Score] = Registry("score", hierarchical=True)


def score(name: str, label: str, better: str | None, fmt: str = ".4g", *, table: bool = True,
          summary: bool = False, metric: str | None = None, description: str = "") -> None:
    """Register the score ``name`` (the key in metrics/<variant>.json and MLflow)."""
    if better not in ("lower", "higher", None):
        raise ValueError(f"score {name!r}: better must be lower, higher or None, got {better!r}")
    SCORES.register(name, Score(label, better, fmt, table, summary, metric), description or label)


def table_scores(summary: bool = False) -> list[tuple[str, Score]]:
    """(name, score) of every table column (``summary``: of the run summary), in table order."""
    return [(e.name, e.value) for e in SCORES if (e.value.summary if summary else e.value.table)]


def better(name: str) -> str | None:
    """Which way ``name`` is better: "lower", "higher", or None (unknown or not a quality)."""
    return SCORES.get(name).better if name in SCORES else None


# Metrics of two feature sets (real (N, D), generated (M, D), float64, at most 5,000 rows a side),
# computed by the evaluate stage for each name in evaluate.metrics.  A metric returns a mapping of
# score names to floats (prefix them with the metric's name: they share metrics/<variant>.json
# with every other metric).  Plugins register their own with the same call.
METRICS: Registry = Registry("metric", ("real", "fake", "seed"))
# Keys of a metrics file that are not scores.
RECORD_KEYS = frozenset({"step", "extractor", "n_samples", "score", "selected"})


def reserved_scores() -> frozenset[str]:
    """Score names the scorer computes itself (FID, IS, the class histogram and mode metrics, the
    translation errors): a registered metric may not return them, or it would replace the score
    selection ranks by."""
    return RECORD_KEYS | {e.name for e in SCORES if e.value.metric is None}


def capped(real: np.ndarray, fake: np.ndarray, seed: int, cap: int = 5000) -> tuple[np.ndarray, np.ndarray]:
    """At most ``cap`` rows of each (a seeded random subset): the k-NN metrics are quadratic in N."""
    rng = np.random.default_rng(seed)
    r = real[rng.choice(len(real), cap, replace=False)] if len(real) > cap else real
    f = fake[rng.choice(len(fake), cap, replace=False)] if len(fake) > cap else fake
    return r, f


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
        taken = sorted(set(scores) & (set(out) | reserved_scores()))
        if taken:
            raise ValueError(f"metric {name!r} returns score(s) {taken} that another metric already gives; "
                             "prefix its score names with the metric's name")
        for k, v in scores.items():
            try:
                out[k] = float(v)
            except (TypeError, ValueError):
                raise ValueError(f"metric {name!r}: score {k!r} is not a number: {v!r}") from None
    return out

