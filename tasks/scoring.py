"""Scoring generated samples against the prepared real data (shared by select and evaluate)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from gan_models import metrics as M
from gan_models.data import load_arrays
from gan_models.features import Extractor, load_for

from .layout import Layout, Prepared


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
    def load(cls, layout: Layout, prep: Prepared, split: str, device: str | torch.device = "cpu") -> "Scorer":
        if prep.info.kind == "points":
            real = prep.train_x if split == "train" else prep.held_x
            return cls(prep, split, None, None, np.asarray(real, dtype=np.float64))
        ref_file = layout.prepared / f"ref_{split}.npz"
        feats = None
        if split == "train" and (layout.prepared / "features_train.npz").exists():
            feats = load_arrays(layout.prepared / "features_train.npz")["features"].astype(np.float64)
        return cls(prep, split, load_for(layout.prepared, prep.manifest, device), M.ReferenceStats.load(ref_file), None,
                   feats)

    @property
    def extractor_name(self) -> str:
        return self.extractor.name if self.extractor else "points"

    def score(self, samples: torch.Tensor, is_splits: int = 10, extended: tuple[str, ...] = (),
              seed: int = 0, source_labels: np.ndarray | None = None,
              requested_labels: np.ndarray | None = None, desc: str | None = None) -> dict[str, float]:
        """Metrics for ``samples`` (model range); ``extended`` names registered feature metrics
        (``gan_models.metrics.METRICS``: KID, precision/recall, density/coverage, a plugin's)
        computed on at most 5,000 samples a side.  ``source_labels``: the labels of translated
        inputs, for label preservation; ``requested_labels``: the classes a conditional generator
        was asked for, for label agreement.  Raises ValueError on NaN/Inf samples."""
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
        feats, logits = self.extractor(samples, desc=desc)
        out = {"fid": M.fid(self.ref, feats)}
        if logits is not None:
            out["is_mean"], out["is_std"] = M.inception_score(logits, splits=min(is_splits, len(logits)))
            if self.extractor.name in ("classifier", "stacked_digits"):  # its classes are the data set's classes
                # Stacked MNIST's truth is uniform over its 1,000 modes by construction; the training
                # split's own frequencies leave modes at 0 (an infinite KL for a sample there)
                freq = (np.full(m["stacked"]["modes"], 1 / m["stacked"]["modes"]) if m.get("stacked")
                        else np.asarray(m["class_frequencies"]))
                out.update(M.class_histogram_metrics(logits, freq))
                if m.get("stacked"):  # Stacked MNIST: modes covered of 1,000, KL to the uniform truth
                    out.update(M.mode_histogram_metrics(logits.argmax(1), m["stacked"]["modes"]))
                if source_labels is not None and (source_labels >= 0).all():
                    out["label_preservation"] = M.label_preservation(logits, source_labels)
                if requested_labels is not None:  # a conditional G: is the class it was asked for obeyed?
                    out["label_agreement"] = M.label_preservation(logits, requested_labels)
        if extended and self.real_features is not None:
            out.update(self._distribution_metrics(self.real_features, feats, seed, extended))
        return out

    def score_generator(self, G: torch.nn.Module, z_dim: int, n: int, seed: int, is_splits: int = 10,
                        extended: tuple[str, ...] = (), task: str | None = None, desc: str | None = None
                        ) -> tuple[dict[str, float], torch.Tensor, torch.Tensor | None]:
        """Score ``G``: ``n`` samples from seeded noise, or, for a translation generator (``task``
        "paired"/"unpaired", from its checkpoint), the first ``n`` held-out inputs translated and
        compared with their ground truth.  A generator from noise trained on translation data
        (the target domain) is scored from noise like on any data set.  Returns (scores, the
        generated images, their labels: requested classes or the inputs' labels)."""
        from gan_models.networks.conditioning import conditions_for, requested_labels
        from gan_models.training import sample

        if task is None:
            fake = sample(G, n, z_dim, seed)
            labels = requested_labels(G, conditions_for(G, n))
            requested = labels.numpy() if labels is not None else None
            return self.score(fake, is_splits, extended, seed, requested_labels=requested, desc=desc), fake, labels
        p, t = self.prep, self.prep.translation
        n = min(n, len(p.held_a))
        source, truth, labels = p.held_a[:n], p.held_x[:n], p.held_ya[:n]
        fake = translate(G, source)
        scores = self.score(fake, is_splits, extended, seed, source_labels=labels, desc=desc)
        if t["ground_truth"]:
            scores.update(translation_errors(fake, truth))
        if hasattr(G, "ba"):  # CycleGAN: the other direction (B -> A) and both cycles
            back = translate(G.ba, truth)
            scores["cycle_l1_aba"] = M.l1_error(unit_range(translate(G.ba, fake)), unit_range_of_uint8(source))
            scores["cycle_l1_bab"] = M.l1_error(unit_range(translate(G.ab, back)), unit_range_of_uint8(truth))
            if t["ground_truth"]:
                scores.update({f"{k}_ba": v for k, v in translation_errors(back, source).items()})
        return scores, fake, torch.from_numpy(labels) if (labels >= 0).all() else None

    @staticmethod
    def _distribution_metrics(real: np.ndarray, fake: np.ndarray, seed: int, names: tuple[str, ...]) -> dict[str, float]:
        return M.registered_metrics(names, real, fake, seed)


def independent_scores(layout: Layout, prep: Prepared, fake: torch.Tensor,
                       device: str | torch.device = "cpu") -> dict[str, float]:
    """The class-histogram metrics and FID of ``fake`` on the independent classifier (another
    architecture and seed, trained by prepare on the same split; its training-split statistics),
    prefixed ``independent_``; empty when prepare trained none (unlabelled or point data)."""
    info = prep.manifest.get("independent")
    if not info:
        return {}
    from gan_models.features.classifier import features_and_logits, load_classifier

    model = load_classifier(layout.prepared / info["file"])
    feats, logits = features_and_logits(model, fake, device=device)
    ref = M.ReferenceStats.load(layout.prepared / "ref_train_independent.npz")
    scores = {"fid": M.fid(ref, feats),
              **M.class_histogram_metrics(logits, np.asarray(prep.manifest["class_frequencies"]))}
    return {f"independent_{k}": v for k, v in scores.items()}


# -- translation: outputs against ground truth --------------------------------------------------------
def translate(G: torch.nn.Module, source: np.ndarray | torch.Tensor, batch_size: int = 500) -> torch.Tensor:
    """Model-range outputs of ``G`` for uint8 input images (or model-range tensors)."""
    from gan_models.data import to_model_range
    from gan_models.training import generate

    x = torch.from_numpy(source) if isinstance(source, np.ndarray) else source
    return generate(G, to_model_range(x), batch_size=batch_size)


def unit_range(x: torch.Tensor) -> np.ndarray:
    """Model range [-1, 1] -> float64 [0, 1], the scale the translation metrics use."""
    return ((x.double().clamp(-1, 1) + 1) / 2).numpy()


def unit_range_of_uint8(x: np.ndarray) -> np.ndarray:
    return x.astype(np.float64) / 255.0


def translation_errors(fake: torch.Tensor, truth: np.ndarray) -> dict[str, float]:
    """L1, PSNR and SSIM of translated images against their uint8 ground truth, on [0, 1]."""
    f, t = unit_range(fake), unit_range_of_uint8(truth)
    return {"l1": M.l1_error(f, t), "psnr": M.psnr(f, t), "ssim": M.ssim(f, t)}


TRANSLATION_METRICS = ("l1", "ssim", "psnr")  # need held-out ground truth


def primary_metric(kind: str, configured: str, translation: dict | None = None) -> str:
    """The selection metric: ``fid`` (lower is better), ``modes`` (more covered modes, then more
    high-quality samples), or for translation ``l1`` (lower) / ``ssim``, ``psnr`` (higher) against
    the held-out ground truth.  ``translation``: the manifest's translation record when the
    variant translates images, None when it generates from noise (whatever the data set)."""
    truth = bool(translation and translation.get("ground_truth"))
    if configured == "auto":
        if translation:
            return "l1" if truth else "fid"
        return "fid" if kind == "image" else "modes"
    if configured == "modes" and kind != "points":
        raise ValueError("select.metric=modes needs 2D point data; use fid (or auto) for images")
    if configured in TRANSLATION_METRICS and translation is None:
        raise ValueError(f"select.metric={configured} scores translations against their ground truth; a variant "
                         "that generates from noise has none: use fid (or auto)")
    if configured in TRANSLATION_METRICS and not truth:
        raise ValueError(f"select.metric={configured} needs translation data whose held-out inputs have ground "
                         "truth (paired data, or the embedded thin2thick); use fid (or auto)")
    return configured


def headline_key(metric: str, kind: str) -> str:
    """The score a selection metric ranks by first: fid (fid_points for 2D data), modes_covered,
    or the translation metric itself."""
    if metric == "fid":
        return "fid" if kind == "image" else "fid_points"
    if metric in TRANSLATION_METRICS:
        return metric
    return "modes_covered"


def sort_key(metric: str, kind: str, scores: dict[str, float]) -> tuple[float, ...]:
    """Smaller is better: the headline score in the direction the metric registry declares for it
    (lowest FID or L1, highest SSIM or PSNR), or most modes covered then most high-quality samples."""
    keys = ("modes_covered", "high_quality_fraction") if metric == "modes" else (headline_key(metric, kind),)
    return tuple(scores[k] if M.better(k) == "lower" else -scores[k] for k in keys)
