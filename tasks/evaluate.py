"""Stage 4, evaluate: final metrics of a variant's selected checkpoint, with a larger sample count.

Images: FID against the training split's cached feature statistics, Inception score and the
class-histogram mode metrics from the feature classifier, KID, precision/recall (k=3) and
density/coverage (k=5) on the same features, and the diversity of the samples (mean pairwise
perceptual distance, ``evaluate.diversity``) beside that of the real training images, and the
class-histogram metrics and FID on the independent classifier (``independent_*``: another
architecture and seed, which no recipe trains against); for a variant conditioned on several
inputs, whether each measured input was obeyed (``attr_r_<name>``, ``attr_mae_<name>``).  2D mixtures: modes covered, share of high-quality
samples, reverse KL, and FID, KID, precision/recall, density/coverage on the points.  Every
value comes with ``n_samples`` and ``extractor`` in ``metrics/<variant>.json``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np

from gan_models.data.attributes import ATTRIBUTES, agreement, measure
from gan_models.features.perceptual import distance_for
from gan_models.metrics.diversity import diversity_scores
from gan_models.networks import conditioning as cond
from gan_models.variants import generator_from_checkpoint

from .config import Params
from .layout import Layout, MissingInputError, Prepared, load_prepared, load_selected
from .records import up_to_date, write_record
from .runtime import configure_threads, resolve_device
from .scoring import Scorer, independent_scores
from .stages import stage_fingerprint

log = logging.getLogger(__name__)


def evaluate(params: Params, variant: str, layout: Layout = Layout()) -> dict[str, Any]:
    configure_threads(params.train.threads, params.train.parallel)
    prep = load_prepared(layout)
    cfg = params.evaluate
    ckpt, selection = load_selected(layout, variant)
    out = layout.metrics_file(variant)
    fp = stage_fingerprint("evaluate", params, variant, layout)
    if up_to_date(out, fp.value):
        log.info("evaluate %s: up to date", variant)
        return json.loads(out.read_text())
    device = resolve_device(params.device)
    G, z_dim = generator_from_checkpoint(ckpt, device)
    scorer = Scorer.load(layout, prep, "train", device)
    psi = getattr(G, "truncation_psi", None)  # a StyleGAN: the metrics at psi = 1, the trade-off beside them
    if psi is not None:
        G.truncation_psi = 1.0
    # A translation variant translates every held-out input (its ground truth is there).
    task = ckpt["data"].get("task")
    n = len(prep.held_a) if task else cfg.n_samples
    scores, fake, labels = scorer.score_generator(G, z_dim, n, cfg.seed, is_splits=cfg.is_splits,
                                                  extended=tuple(cfg.metrics), task=task,
                                                  desc=f"evaluate {variant}: {scorer.extractor_name} features")
    conditional = getattr(G, "n_classes", 0) or cond.is_conditioned(G)
    div, div_info = diversity(params, layout, prep, fake, labels if conditional else None)
    if cond.is_conditioned(G):  # are the requested attributes obeyed? (the label: label_agreement)
        scores.update(attribute_agreement(G, fake))
    scores.update(div)
    scores.update(independent_scores(layout, prep, fake, device))  # judged by a classifier no recipe trains against
    if psi is not None:
        scores.update(truncation_tradeoff(scorer, G, z_dim, cfg, psi))
    baselines = (prep.translation or {}).get("baselines", {}) if task else {}
    for name, row in baselines.items():  # what the translation must beat, computed the same way
        scores.update({f"{name}_{k}": v for k, v in row.items() if k != "sigma"})
    # One code hash, not the file map: DVC shows every key of a metrics file as a column.
    record = {"fingerprint": fp.value, "code_sha256": fp.code_sha256, "variant": variant, "step": int(ckpt["step"]), **scores,
              "n_samples": len(fake), **({"task": task} if task else {}), "reference": f"{prep.manifest['dataset']}:train "
              f"({prep.manifest['counts']['train']} samples)", "extractor": scorer.extractor_name,
              "extractor_note": (prep.manifest.get("extractor") or {}).get("note", "2D points: metrics on raw coordinates"),
              **({"mode_reader": "the digit classifier on each channel, held-out accuracy {heldout_accuracy:.3f} per "
                  "digit, {heldout_mode_accuracy:.3f} all three".format(**prep.manifest["stacked"]["digit_classifier"])}
                 if prep.manifest.get("stacked") else {}),
              **({"independent_classifier": f"{prep.manifest['independent']['arch']} CNN, seed "
                  f"{prep.manifest['independent']['seed']}, held-out accuracy "
                  f"{prep.manifest['independent']['heldout_accuracy']:.3f}"} if prep.manifest.get("independent") else {}),
              "selection_metric": selection["metric"], **div_info, **extractor_facts(prep.manifest)}
    out.parent.mkdir(parents=True, exist_ok=True)
    write_record(out, record, [])
    return json.loads(out.read_text())


def extractor_facts(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the metrics depend on besides the samples, beside every value: the feature extractor's
    held-out accuracy (for a classifier: how much its FID can say), its preprocessing (the resize
    before Inception), the real reference's size."""
    info = manifest.get("extractor") or {}
    out: dict[str, Any] = {}
    if "heldout_accuracy" in info and info.get("key") in ("classifier", "stacked_digits"):
        out["extractor_accuracy"] = info["heldout_accuracy"]
    if info.get("preprocessing"):
        out["extractor_preprocessing"] = info["preprocessing"]
    return out


def attribute_agreement(G, fake) -> dict[str, float]:
    """For every measured attribute a multi-input G is conditioned on (thickness, slant, ...):
    the attribute measured on its samples against the value each was asked for, as Pearson's r
    (``attr_r_<name>``) and the mean absolute error in the attribute's units (``attr_mae_<name>``).
    With the label among the inputs also the mean of the per-class r
    (``attr_r_<name>_within_class``): attributes differ between digits (a "1" is narrow), so a G
    that only obeyed the label would still score some r overall, but none within a class.
    ``fake``: the samples of ``sample(G, n, ...)``, asked for ``conditions_for(G, n)``."""
    if fake.shape[1] != 1:
        return {}
    asked = cond.conditions_for(G, len(fake))
    classes = cond.requested_labels(G, asked)
    names = [n for n, _ in G.inputs if n in ATTRIBUTES]
    got = measure(fake.numpy(), names)
    out = {}
    for name in names:
        want = cond.column(G, name, asked)[:, 0].numpy()
        out[f"attr_r_{name}"] = agreement(want, got[name])
        out[f"attr_mae_{name}"] = float(abs(want - got[name]).mean())
        if classes is not None:
            per = [agreement(want[m], got[name][m]) for m in (classes.numpy() == k for k in np.unique(classes.numpy()))
                   if m.sum() > 2]
            if per:
                out[f"attr_r_{name}_within_class"] = float(np.mean(per))
    return out


TRUNCATION_PSIS = (0.5, 0.7)  # besides psi = 1 (the headline metrics) and the variant's own


def truncation_tradeoff(scorer: Scorer, G, z_dim: int, cfg, psi: float) -> dict[str, float]:
    """FID, precision, recall, confident share and classes covered at each truncation psi of
    ``TRUNCATION_PSIS`` and the configured ``psi`` (when not 1), as ``psi<value>_<metric>``: the
    same samples' noise, w pulled towards the average w.  ``G.truncation_psi`` is left as found."""
    out = {}
    keep = ("fid", "precision", "recall", "confident_fraction", "classes_covered")
    before = G.truncation_psi
    try:
        for p in sorted({*TRUNCATION_PSIS, float(psi)} - {1.0}):
            G.truncation_psi = p
            s, _, _ = scorer.score_generator(G, z_dim, cfg.n_samples, cfg.seed, is_splits=cfg.is_splits,
                                             extended=("precision_recall",))
            out.update({f"psi{p:g}_{k}": s[k] for k in keep if k in s})
    finally:
        G.truncation_psi = before
    return out


def diversity_net(params: Params, layout: Layout) -> str:
    """The network ``evaluate.diversity.net`` resolves to: classifier, alex, vgg or none."""
    net = params.evaluate.diversity.net
    if net == "auto":
        return "classifier" if (layout.prepared / "classifier.pt").exists() else "none"
    return net


def diversity(params: Params, layout: Layout, prep: Prepared, fake, fake_labels) -> tuple[dict, dict]:
    """Diversity scores of the generated images against the real training images (per class too
    for a conditional generator), and what computed them (for the record)."""
    cfg = params.evaluate.diversity
    net = diversity_net(params, layout)
    if net == "none" or prep.info.kind != "image":
        return {}, {}
    try:
        dist = distance_for(net, layout.prepared, cfg.weights, resolve_device(params.device))
    except FileNotFoundError as e:
        raise MissingInputError(str(e)) from None
    labelled = fake_labels is not None and prep.manifest.get("labelled")
    scores = diversity_scores(dist, fake, prep.train_x, cfg.n_pairs, params.evaluate.seed,
                              fake_labels.numpy() if labelled else None, prep.train_y if labelled else None)
    note = ("LPIPS construction on the data set's classifier, uncalibrated (equal channel weights): not LPIPS"
            if net == "classifier" else f"LPIPS v0.1 ({dist.name}, calibrated linear layers of the lpips package)")
    return scores, {"diversity_distance": dist.name, "diversity_note": note, "diversity_pairs": cfg.n_pairs,
                    "diversity_reference": "train",
                    # one string, not a map: DVC shows every key of a metrics file as a column
                    "diversity_weights": ", ".join(f"{k} sha256:{v}" for k, v in dist.files.items())}
