"""Scoring generated samples against the prepared real data (shared by select and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan_models import metrics as M
from gan_models.data import load_arrays
from gan_models.features import Extractor, load_for

from .common import Layout, Prepared


@dataclass
class Scorer:
    """Metrics of generated samples against one real split ("train" or "heldout")."""

    prep: Prepared
    split: str
    extractor: Extractor | None
    ref: M.ReferenceStats | None
    real_points: np.ndarray | None
    real_features: np.ndarray | None = None  # for KID / precision-recall / density-coverage

    @classmethod
    def load(cls, layout: Layout, prep: Prepared, split: str) -> "Scorer":
        if prep.info.kind == "points":
            real = prep.train_x if split == "train" else prep.held_x
            return cls(prep, split, None, None, np.asarray(real, dtype=np.float64))
        ref_file = layout.prepared / f"ref_{split}.npz"
        feats = None
        if split == "train" and (layout.prepared / "features_train.npz").exists():
            feats = load_arrays(layout.prepared / "features_train.npz")["features"].astype(np.float64)
        return cls(prep, split, load_for(layout.prepared, prep.manifest), M.ReferenceStats.load(ref_file), None,
                   feats)

    @property
    def extractor_name(self) -> str:
        return self.extractor.name if self.extractor else "points"

    def score(self, samples: torch.Tensor, is_splits: int = 10, extended: tuple[str, ...] = (),
              seed: int = 0) -> dict[str, float]:
        """Metrics for ``samples`` (model range); ``extended`` names registered feature metrics
        (``gan_models.metrics.METRICS``: KID, precision/recall, density/coverage, a plugin's)
        computed on at most 5,000 samples a side.  Raises ValueError on NaN/Inf samples."""
        if not torch.isfinite(samples).all():
            raise ValueError("generated samples contain NaN or Inf (the generator diverged)")
        m = self.prep.manifest
        if self.extractor is None:  # 2D mixtures
            pts = samples.double().numpy()
            out = M.mode_metrics(pts, np.asarray(m["centers"]), m["std"])
            out["fid_points"] = M.fid(self.real_points, pts)
            if extended:
                out.update(self._distribution_metrics(self.real_points, pts, seed, extended))
            return out
        feats, logits = self.extractor(samples)
        out = {"fid": M.fid(self.ref, feats)}
        if logits is not None:
            out["is_mean"], out["is_std"] = M.inception_score(logits, splits=min(is_splits, len(logits)))
            if self.extractor.name == "classifier":  # its classes are the data set's classes
                out.update(M.class_histogram_metrics(logits, np.asarray(m["class_frequencies"])))
        if extended and self.real_features is not None:
            out.update(self._distribution_metrics(self.real_features, feats, seed, extended))
        return out

    @staticmethod
    def _distribution_metrics(real: np.ndarray, fake: np.ndarray, seed: int, names: tuple[str, ...]) -> dict[str, float]:
        return M.registered_metrics(names, real, fake, seed)


def primary_metric(kind: str, configured: str) -> str:
    """The selection metric: ``fid`` (lower is better) or ``modes`` (more covered modes, then more
    high-quality samples)."""
    if configured == "auto":
        return "fid" if kind == "image" else "modes"
    if configured == "modes" and kind != "points":
        raise ValueError("select.metric=modes needs 2D point data; use fid (or auto) for images")
    return configured


def headline_key(metric: str, kind: str) -> str:
    """The score a selection metric ranks by first: fid (fid_points for 2D data) or modes_covered."""
    if metric == "fid":
        return "fid" if kind == "image" else "fid_points"
    return "modes_covered"


def sort_key(metric: str, kind: str, scores: dict[str, float]) -> tuple[float, ...]:
    """Smaller is better: lowest FID, or most modes covered then most high-quality samples."""
    value = scores[headline_key(metric, kind)]
    return (value,) if metric == "fid" else (-value, -scores["high_quality_fraction"])
