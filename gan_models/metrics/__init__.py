"""Metrics, one module per kind; each registers the scores it computes beside the code.

``base``: the registries (``METRICS``: what ``evaluate.metrics`` names; ``SCORES``: every value's
label and which way is better); ``translation``: errors against ground truth; ``distances``: FID,
KID, precision/recall, density/coverage on features; ``classes``: the Inception score, class
histograms, mode coverage; ``diversity``: mean perceptual distance of sample pairs;
``agreement``: whether a conditional generator obeys its label and attributes; ``human``: HYPE∞
from people's answers.
"""

from . import translation, distances, classes, diversity, agreement, human  # noqa: F401  (order: the table's columns)
from .base import METRICS, SCORES, Score, better, capped, registered_metrics, reserved_scores, score, table_scores
from .classes import (class_histogram_metrics, inception_score, mode_histogram_metrics, mode_metrics)
from .distances import (ReferenceStats, density_coverage, fid, frechet_distance, kid, mmd2_unbiased,
                        precision_recall, reference_stats)
from .diversity import diversity_scores, mean_pairwise, random_pairs
from .human import hype_infinity
from .translation import SSIM_K1, SSIM_K2, SSIM_SIGMA, SSIM_TRUNCATE, l1_error, label_preservation, psnr, ssim

__all__ = ["METRICS", "SCORES", "Score", "better", "capped", "registered_metrics", "reserved_scores", "score",
           "table_scores", "class_histogram_metrics", "inception_score", "mode_histogram_metrics", "mode_metrics",
           "ReferenceStats", "density_coverage", "fid", "frechet_distance", "kid", "mmd2_unbiased",
           "precision_recall", "reference_stats", "diversity_scores", "mean_pairwise", "random_pairs", "hype_infinity", "SSIM_K1", "SSIM_K2", "SSIM_SIGMA",
           "SSIM_TRUNCATE", "l1_error", "label_preservation", "psnr", "ssim"]
