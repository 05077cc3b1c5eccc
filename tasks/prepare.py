"""Stage 1, prepare: load the data set, split it, train the feature classifier, cache real statistics.

Writes ``data/prepared/`` (one DVC out): train.npz, heldout.npz, manifest.json and, for labelled
images, classifier.pt plus ref_train.npz / ref_heldout.npz (feature statistics of the real data).
The folder is built aside and swapped in whole, so a failed run leaves the previous one intact.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gan_models import classifier as C
from gan_models import metrics as M
from gan_models.features import EXTRACTORS
from gan_models.data import DATASETS, DataError, content_hash, resize_images, save_arrays, split_indices, value_range

from .common import Layout, configure_threads, up_to_date, write_record
from .config import Params
from .stages import stage_fingerprint

log = logging.getLogger(__name__)


def prepare(params: Params, layout: Layout = Layout()) -> dict[str, Any]:
    configure_threads(params.train.threads, params.train.parallel)
    cfg = params.prepare
    out = layout.prepared
    fp = stage_fingerprint("prepare", params, None, layout)
    if up_to_date(out / "manifest.json", fp.value):
        log.info("prepare: %s is up to date", out)
        return _summary(out)
    loader = DATASETS.get(cfg.dataset)
    raw = loader(root=cfg.root, download=cfg.download, image_size=cfg.image_size, channels=cfg.channels,
                 n_points=cfg.n_points, seed=params.seed)
    x, y = raw.x, raw.y
    if raw.kind == "image" and cfg.image_size is not None:
        x = resize_images(x, cfg.image_size)
    if cfg.max_samples is not None and cfg.max_samples < len(x):
        keep = np.sort(np.random.default_rng(params.seed).permutation(len(x))[:cfg.max_samples])
        x, y = x[keep], y[keep]
    train_idx, held_idx = split_indices(len(x), cfg.heldout_fraction, params.seed)
    tx, ty, hx, hy = x[train_idx], y[train_idx], x[held_idx], y[held_idx]
    labelled = bool((y >= 0).all()) and len(raw.classes) > 1

    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_arrays(tmp / "train.npz", x=tx, y=ty)
    save_arrays(tmp / "heldout.npz", x=hx, y=hy)
    outputs = [tmp / "train.npz", tmp / "heldout.npz"]
    manifest: dict[str, Any] = {
        "fingerprint": fp.value, "code": fp.code, "dataset": cfg.dataset, "source": DATASETS.entry(cfg.dataset).description,
        "kind": raw.kind, "shape": list(x.shape[1:]), "dtype": str(x.dtype),
        "counts": {"train": int(len(tx)), "heldout": int(len(hx))},
        "value_range": value_range(x), "model_range": [-1.0, 1.0] if raw.kind == "image" else value_range(x),
        "labelled": labelled, "classes": raw.classes,
        "class_frequencies": (np.bincount(ty, minlength=len(raw.classes)) / len(ty)).tolist() if labelled else [],
        "content_hash": content_hash(tx, ty, hx, hy), "split_seed": params.seed, **raw.extra}

    if raw.kind == "image":
        if labelled:
            log.info("prepare: training the feature classifier (%d epochs)", cfg.classifier_epochs)
            model = C.train_classifier(tx, ty, len(raw.classes), seed=params.seed, epochs=cfg.classifier_epochs)
            C.save_classifier(model, tmp / "classifier.pt", {"data_hash": manifest["content_hash"]})
            outputs.append(tmp / "classifier.pt")
        else:
            log.warning("prepare: %s has no labels, so no feature classifier is trained; image metrics use "
                        "the crude pixels extractor (put images in class sub-folders to get one)", cfg.dataset)
        key = cfg.extractor if cfg.extractor != "auto" else ("classifier" if labelled else "pixels")
        if key == "classifier" and not labelled:
            raise DataError(f"prepare.extractor=classifier needs labelled images; {cfg.dataset} has no labels "
                            "(use inception or pixels)")
        options = {"weights": cfg.inception_weights, "url": cfg.inception_url} if key == "inception" else {}
        weights_sha = None
        try:
            extractor = EXTRACTORS.get(key)(tmp, **options)
        except FileNotFoundError as e:
            raise DataError(str(e)) from None
        if key == "inception":  # the weights are read again by select and evaluate: part of their inputs
            from gan_models.inception import find_weights
            from gan_models.checkpoint import sha256_file

            w = find_weights(cfg.inception_weights)
            weights_sha = sha256_file(w) if w else None
        f_train, _ = extractor(tx)
        f_held, logits_held = extractor(hx)
        ref_train, ref_held = M.reference_stats(f_train), M.reference_stats(f_held)
        ref_train.save(tmp / "ref_train.npz")
        ref_held.save(tmp / "ref_heldout.npz")
        save_arrays(tmp / "features_train.npz", features=f_train.astype(np.float32))  # for KID, PR, DC
        outputs += [tmp / "ref_train.npz", tmp / "ref_heldout.npz", tmp / "features_train.npz"]
        info: dict[str, Any] = {
            "key": key, "options": options, "weights_sha256": weights_sha, "name": extractor.name, "feature_dim": int(f_train.shape[1]),
            # Sanity figure: FID between two real sets should be near 0.
            "fid_train_vs_heldout": M.fid(ref_train, f_held),
            "note": f"FID on {extractor.name} features is not comparable with Inception FID"}
        if logits_held is not None:
            info["heldout_accuracy"] = float((logits_held.argmax(1) == hy).mean())
            info["is_heldout"] = list(M.inception_score(logits_held, splits=min(10, len(hx))))
        manifest["extractor"] = info
    write_record(tmp / "manifest.json", manifest, outputs)
    _swap_in(tmp, out)
    return _summary(out)


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace ``out`` by ``tmp`` with renames only; the old folder is removed last."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def _summary(out: Path) -> dict[str, Any]:
    import json

    m = json.loads((out / "manifest.json").read_text())
    return {"path": str(out), "dataset": m["dataset"], "kind": m["kind"], "shape": m["shape"],
            "counts": m["counts"], "content_hash": m["content_hash"], "extractor": m.get("extractor")}


__all__ = ["prepare", "DataError"]
