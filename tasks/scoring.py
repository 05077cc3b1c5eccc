"""Scoring generated samples against the prepared real data (shared by select and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan_models import metrics as M
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

    @classmethod
    def load(cls, layout: Layout, prep: Prepared, split: str) -> "Scorer":
        if prep.info.kind == "points":
            real = prep.train_x if split == "train" else prep.held_x
            return cls(prep, split, None, None, np.asarray(real, dtype=np.float64))
        ref_file = layout.prepared / f"ref_{split}.npz"
        return cls(prep, split, load_for(layout.prepared, prep.manifest), M.ReferenceStats.load(ref_file), None)

    @property
    def extractor_name(self) -> str:
        return self.extractor.name if self.extractor else "points"

    def score(self, samples: torch.Tensor, is_splits: int = 10) -> dict[str, float]:
        """All metrics for ``samples`` (model range).  Raises ValueError on NaN/Inf samples."""
        if not torch.isfinite(samples).all():
            raise ValueError("generated samples contain NaN or Inf (the generator diverged)")
        m = self.prep.manifest
        if self.extractor is None:  # 2D mixtures
            pts = samples.double().numpy()
            out = M.mode_metrics(pts, np.asarray(m["centers"]), m["std"])
            out["fid_points"] = M.fid(self.real_points, pts)
            return out
        feats, logits = self.extractor(samples)
        out = {"fid": M.fid(self.ref, feats)}
        if logits is not None:
            out["is_mean"], out["is_std"] = M.inception_score(logits, splits=min(is_splits, len(logits)))
            out.update(M.class_histogram_metrics(logits, np.asarray(m["class_frequencies"])))
        return out


def primary_metric(kind: str, configured: str) -> str:
    """The selection metric: ``fid`` (lower is better) or ``modes`` (more covered modes, then more
    high-quality samples)."""
    if configured == "auto":
        return "fid" if kind == "image" else "modes"
    if configured == "modes" and kind != "points":
        raise ValueError("select.metric=modes needs 2D point data; use fid (or auto) for images")
    return configured


def sort_key(metric: str, scores: dict[str, float]) -> tuple[float, ...]:
    """Smaller is better."""
    if metric == "fid":
        return (scores["fid"] if "fid" in scores else scores["fid_points"],)
    return (-scores["modes_covered"], -scores["high_quality_fraction"])

