"""Stage 3, select: score every checkpoint of a variant on the held-out split, keep the best.

Writes ``models/<variant>/selected/``: best.pt (a copy of the chosen checkpoint),
selection.json (metric, every candidate's scores, the choice) and selection.png.
A checkpoint whose samples are not finite (a diverged run) is recorded and never chosen.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import torch

from gan_models import checkpoint as ck
from gan_models.files import atomic_write_bytes
from gan_models.images import score_png
from gan_models.progress import progress
from gan_models.variants import generator_from_checkpoint

from .config import Params
from .layout import Layout, load_prepared
from .records import up_to_date, write_csv, write_record
from .runtime import configure_threads, resolve_device
from .scoring import Scorer, headline_key, primary_metric, sort_key
from .stages import stage_fingerprint

log = logging.getLogger(__name__)


def select(params: Params, variant: str, layout: Layout = Layout()) -> dict[str, Any]:
    configure_threads(params.train.threads, params.train.parallel)
    prep = load_prepared(layout)
    cfg = params.select
    train_dir = layout.train_dir(variant)
    fp = stage_fingerprint("select", params, variant, layout)  # names the stage to run when train has not
    entries = ck.read_index(train_dir)
    # "paired"/"unpaired" when the variant translates images (train's record says), None when it
    # generates from noise, whatever the data set
    task = json.loads((train_dir / "run.json").read_text()).get("task")
    metric = primary_metric(prep.info.kind, cfg.metric, prep.translation if task else None)
    out = layout.selected_dir(variant)
    if up_to_date(out / "selection.json", fp.value):
        log.info("select %s: up to date", variant)
        return _summary(out)

    device = resolve_device(params.device)
    scorer = Scorer.load(layout, prep, "heldout", device)
    candidates = []
    bar = progress(len(entries), f"select {variant}: scoring checkpoints", "checkpoint")
    for entry in entries:
        cand: dict[str, Any] = {"step": entry["step"], "file": entry["file"], "sha256": entry["sha256"]}
        try:
            ckpt = ck.load_checkpoint(train_dir / entry["file"], entry["sha256"])
            G, z_dim = generator_from_checkpoint(ckpt, device)
            if hasattr(G, "truncation_psi"):  # a StyleGAN is selected (and ranked) untruncated, like evaluate
                G.truncation_psi = 1.0
            cand["scores"] = scorer.score_generator(G, z_dim, cfg.n_samples, cfg.seed,
                                                    task=ckpt["data"].get("task"))[0]
        except (ck.CheckpointError, ValueError) as e:
            cand["invalid"] = str(e).replace(f"{train_dir}/", "")  # the same text whichever root ran it
            log.warning("select %s: step %d cannot be scored: %s", variant, entry["step"], e)
        candidates.append(cand)
        bar.update(1)
    bar.close()
    valid = [c for c in candidates if "scores" in c]
    if not valid:
        raise RuntimeError(f"no checkpoint of {variant} in {train_dir} can be scored (all diverged or corrupt); "
                           "see the warnings above")
    best = min(valid, key=lambda c: (sort_key(metric, prep.info.kind, c["scores"]), -c["step"]))

    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "best.pt", (train_dir / best["file"]).read_bytes())
    shown_key = headline_key(metric, prep.info.kind)
    n_scored = min(cfg.n_samples, len(prep.held_a)) if task else cfg.n_samples
    score_png(out / "selection.png", [c["step"] for c in valid],
              [c["scores"][shown_key] for c in valid], best["step"],
              f"{shown_key} (held-out, {n_scored} {'inputs' if task else 'samples'})",
              f"{variant}: checkpoint selection")
    # One row per scored checkpoint, for `dvc plots`: every held-out score, and as `score` the one
    # selection shows (FID for images, modes covered for 2D points), whatever the data set's kind.
    write_csv(out / "scores.csv", [{"step": c["step"], **c["scores"], "score": c["scores"][shown_key],
                                    "selected": int(c is best)} for c in valid])
    record = {"fingerprint": fp.value, "code": fp.code, "variant": variant, "metric": metric, "split": "heldout",
              "extractor": scorer.extractor_name, "n_samples": n_scored, "seed": cfg.seed,
              "best_step": best["step"], "best_scores": best["scores"], "best_sha256": best["sha256"],
              "candidates": candidates}
    write_record(out / "selection.json", record, [out / "best.pt", out / "selection.png", out / "scores.csv"])
    return _summary(out)


def _summary(out) -> dict[str, Any]:
    rec = json.loads((out / "selection.json").read_text())
    return {"variant": rec["variant"], "metric": rec["metric"], "best_step": rec["best_step"],
            "best_scores": rec["best_scores"], "n_candidates": len(rec["candidates"]),
            "best_sha256": rec["best_sha256"], "extractor": rec["extractor"],
            "best_checkpoint": str(out / "best.pt"),
            "scores_by_step": {c["step"]: c.get("scores", {}) for c in rec["candidates"]}}


def checkpoint_grids(layout, variant: str, n: int = 64, seed: int = 2024,
                     device: str | torch.device = "cpu") -> list[tuple[int, Any]]:
    """(step, uint8 image grid) of every checkpoint of ``variant``, from the same noise (image
    data only; a checkpoint that does not load is left out: selection reports it)."""
    from gan_models.images import grid
    from gan_models.training import sample

    d = layout.train_dir(variant)
    out = []
    for entry in ck.read_index(d):
        try:
            c = ck.load_checkpoint(d / entry["file"], entry["sha256"])
            if c["data"]["kind"] != "image" or c["data"].get("task"):
                return []  # 2D points have no grid; a translation G needs input images (export shows them)
            G, z_dim = generator_from_checkpoint(c, device)
            with torch.no_grad():
                out.append((int(entry["step"]), grid(sample(G, n, z_dim, seed))))
        except (ck.CheckpointError, ValueError, KeyError):
            continue
    return out
