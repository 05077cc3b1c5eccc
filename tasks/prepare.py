"""Stage 1, prepare: load the data set, split it, train the feature classifier, cache real statistics.

Writes ``data/prepared/`` (one DVC out): train.npz, heldout.npz, manifest.json and, for labelled
images, classifier.pt plus ref_train.npz / ref_heldout.npz (feature statistics of the real data)
and the independent classifier (classifier_independent.pt, ref_train_independent.npz).
The folder is built aside and swapped in whole, so a failed run leaves the previous one intact.
"""

from __future__ import annotations

import inspect
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from gan_models import metrics as M
from gan_models.data import (DATASETS, DataError, content_hash, resize_images, save_arrays, split_indices, value_range,
                             write_rows)
from gan_models.data.attributes import ATTRIBUTES
from gan_models.data.attributes import measure as measure_attributes
from gan_models.features import make as make_extractor
from gan_models.features import classifier as C

from .config import Params
from .layout import ARRAY_FILES, INPUT_PREFIX, Layout, input_arrays
from .records import up_to_date, write_record
from .runtime import configure_threads, resolve_device
from .stages import stage_fingerprint

log = logging.getLogger(__name__)

MAX_DEFAULT_WORKERS = 8  # prepare.workers: null decodes with one process per available core, up to this


def prepare(params: Params, layout: Layout = Layout()) -> dict[str, Any]:
    configure_threads(params.train.threads, params.train.parallel)
    cfg = params.prepare
    out = layout.prepared
    fp = stage_fingerprint("prepare", params, None, layout)
    if up_to_date(out / "manifest.json", fp.value):
        log.info("prepare: %s is up to date", out)
        return _summary(out)
    if cfg.inputs is not None and cfg.dataset != "folder":
        raise DataError(f"prepare.inputs ({cfg.inputs}) brings per-image inputs for the folder data set; "
                        f"{cfg.dataset} has none to match them to (set prepare.inputs: null)")
    # Everything is built in a folder aside and swapped in whole at the end: a failure leaves the
    # previous prepared data as it was.  Large arrays live there as files, memory-mapped.
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        return _prepare_into(params, layout, fp, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)  # swapped in on success; on a failure, nothing is left


def _prepare_into(params: Params, layout: Layout, fp, tmp: Path) -> dict[str, Any]:
    cfg = params.prepare
    loader = DATASETS.get(cfg.dataset)
    extra = {"inputs": cfg.inputs} if cfg.inputs is not None else {}
    accepted = inspect.signature(loader).parameters
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1  # Linux / others
    for name, value in (("workers", cfg.workers or min(MAX_DEFAULT_WORKERS, cores)),
                        ("scratch", str(tmp))):
        if name in accepted:  # the folder loader's: decoding processes, a folder for the decoded images
            extra[name] = value
    raw = loader(root=cfg.root, download=cfg.download, image_size=cfg.image_size, channels=cfg.channels,
                 n_points=cfg.n_points, seed=params.seed, **extra)
    x, y = raw.x, raw.y
    if raw.translation is not None:
        return _finish(params, layout, fp, raw, _split_translation(raw, cfg, params.seed), tmp)
    if raw.kind == "image" and cfg.image_size is not None:
        x = resize_images(x, cfg.image_size)
    c = per_sample_inputs(raw, x)
    if cfg.max_samples is not None and cfg.max_samples < len(x):
        keep = np.sort(np.random.default_rng(params.seed).permutation(len(x))[:cfg.max_samples])
        x, y, c = x[keep], y[keep], {k: v[keep] for k, v in c.items()}
    if raw.held is not None:  # the loader's own held-out split (Stacked MNIST: images of held-out digits)
        hx = resize_images(raw.held.x, cfg.image_size) if raw.kind == "image" and cfg.image_size else raw.held.x
        return _finish(params, layout, fp, raw, {"train": (x, y), "heldout": (hx, raw.held.y)}, tmp)
    train_idx, held_idx = split_indices(len(x), cfg.heldout_fraction, params.seed)
    # The splits' rows go straight from the loaded array (a memory map for a folder) to their files.
    tx = write_rows(tmp / ARRAY_FILES["train"], x, train_idx)
    hx = write_rows(tmp / ARRAY_FILES["heldout"], x, held_idx)
    del x, raw.x
    (tmp / "images.npy").unlink(missing_ok=True)  # the folder loader's decoded images, now split
    return _finish(params, layout, fp, raw, {"train": (tx, y[train_idx]), "heldout": (hx, y[held_idx]),
                                             "train_c": {k: v[train_idx] for k, v in c.items()},
                                             "heldout_c": {k: v[held_idx] for k, v in c.items()}}, tmp)


def per_sample_inputs(raw, x: np.ndarray) -> dict[str, np.ndarray]:
    """What a multi-input variant can be conditioned on besides the label: the attributes
    measured on grey images (gan_models.attributes) and the loader's own (a folder's
    prepare.inputs), float32 (N,) or (N, d) aligned with ``x``."""
    c: dict[str, np.ndarray] = {}
    if raw.kind == "image" and x.shape[1] == 1 and not raw.extra.get("stacked"):
        log.info("prepare: measuring %s of %d images", ", ".join(ATTRIBUTES.names()), len(x))
        c.update(measure_attributes(x))
    for k, v in raw.inputs.items():
        if k in c or k == "label":
            raise DataError(f"prepare.inputs: the input name {k!r} is taken ({'the class label' if k == 'label' else 'a measured attribute'}); "
                            "rename that column (or the .npy file)")
        c[k] = v
    return c


def _split_translation(raw, cfg, seed: int) -> dict[str, Any]:
    """Train and held-out arrays of a translation data set: (x, y) of the target domain and
    (source, source_y) of the input domain per split, and whether held-out inputs have ground truth.

    Aligned data (the embedded sets) is split once; an unpaired task then trains A and B on
    disjoint halves of the training split, so no pair exists in training, while the held-out
    inputs keep their true counterparts for scoring.  A loader's own held-out split (testA/testB)
    is used as it is; otherwise each domain is split on its own."""
    def fit(a: np.ndarray) -> np.ndarray:
        return resize_images(a, cfg.image_size) if cfg.image_size is not None else a

    def cap(n: int, salt: int) -> np.ndarray:
        if cfg.max_samples is None or cfg.max_samples >= n:
            return np.arange(n)
        return np.sort(np.random.default_rng(seed + salt).permutation(n)[:cfg.max_samples])

    xb, yb, xa, ya = fit(raw.x), raw.y, fit(raw.source), raw.source_y
    if raw.held is not None:
        kb, ka = cap(len(xb), 0), cap(len(xa), 1)
        h = raw.held
        return {"train": (xb[kb], yb[kb]), "train_source": (xa[ka], ya[ka]), "heldout": (fit(h.x), h.y),
                "heldout_source": (fit(h.source), h.source_y), "ground_truth": False}
    if raw.aligned:
        keep = cap(len(xb), 0)
        train_idx, held_idx = split_indices(len(keep), cfg.heldout_fraction, seed)
        train_idx, held_idx = keep[train_idx], keep[held_idx]
        a_idx = b_idx = train_idx
        if raw.translation == "unpaired":  # disjoint halves: nothing in training is a pair
            half = len(train_idx) // 2
            a_idx, b_idx = train_idx[:half], train_idx[half:]
        return {"train": (xb[b_idx], yb[b_idx]), "train_source": (xa[a_idx], ya[a_idx]),
                "heldout": (xb[held_idx], yb[held_idx]), "heldout_source": (xa[held_idx], ya[held_idx]),
                "ground_truth": True}
    kb, ka = cap(len(xb), 0), cap(len(xa), 1)
    tb, hb = split_indices(len(kb), cfg.heldout_fraction, seed)
    ta, ha = split_indices(len(ka), cfg.heldout_fraction, seed + 1)
    return {"train": (xb[kb[tb]], yb[kb[tb]]), "train_source": (xa[ka[ta]], ya[ka[ta]]),
            "heldout": (xb[kb[hb]], yb[kb[hb]]), "heldout_source": (xa[ka[ha]], ya[ka[ha]]), "ground_truth": False}


def _finish(params: Params, layout: Layout, fp, raw, parts: dict[str, Any], tmp: Path) -> dict[str, Any]:
    cfg = params.prepare
    out = layout.prepared
    (tx, ty), (hx, hy) = parts["train"], parts["heldout"]
    tx = tx if _written(tx, tmp, "train") else write_rows(tmp / ARRAY_FILES["train"], tx)
    hx = hx if _written(hx, tmp, "heldout") else write_rows(tmp / ARRAY_FILES["heldout"], hx)
    train_c, held_c = parts.get("train_c", {}), parts.get("heldout_c", {})
    translation = raw.translation is not None
    labelled = bool((ty >= 0).all() and (hy >= 0).all()) and len(raw.classes) > 1
    src: dict[str, np.ndarray] = {}
    if translation:  # the input domain A beside the target domain B, in the same files
        (ta, tya), (ha, hya) = parts["train_source"], parts["heldout_source"]
        src = {"train": {"a": ta, "ya": tya}, "heldout": {"a": ha, "ya": hya}}
    save_arrays(tmp / "train.npz", y=ty, **src.get("train", {}), **{INPUT_PREFIX + k: v for k, v in train_c.items()})
    save_arrays(tmp / "heldout.npz", y=hy, **src.get("heldout", {}),
                **{INPUT_PREFIX + k: v for k, v in held_c.items()})
    outputs = [tmp / ARRAY_FILES["train"], tmp / ARRAY_FILES["heldout"], tmp / "train.npz", tmp / "heldout.npz"]
    manifest: dict[str, Any] = {
        "fingerprint": fp.value, "code": fp.code, "dataset": cfg.dataset, "source": DATASETS.entry(cfg.dataset).description,
        "kind": raw.kind, "shape": list(tx.shape[1:]), "dtype": str(tx.dtype),
        "counts": {"train": int(len(tx)), "heldout": int(len(hx))},
        "value_range": value_range(tx, hx),
        "model_range": [-1.0, 1.0] if raw.kind == "image" else value_range(tx, hx),
        "labelled": labelled, "classes": raw.classes,
        "class_frequencies": (np.bincount(ty, minlength=len(raw.classes)) / len(ty)).tolist() if labelled else [],
        "content_hash": content_hash(tx, ty, hx, hy, *_source_arrays(src)), "split_seed": params.seed, **raw.extra}
    if train_c:
        manifest["inputs"] = {k: _input_record(k, v, raw) for k, v in sorted(train_c.items())}
        manifest["inputs_hash"] = content_hash(*input_arrays(train_c, held_c))
    if translation:
        manifest["translation"] = {
            "task": raw.translation, "source_shape": list(ta.shape[1:]), "target_shape": list(tx.shape[1:]),
            "counts": {"train_source": int(len(ta)), "train_target": int(len(tx)), "heldout": int(len(ha))},
            # held-out inputs have their true targets (heldout x[i] is the counterpart of a[i])
            "ground_truth": bool(parts["ground_truth"]),
            "source_hash": content_hash(ta, tya, ha, hya), "target_hash": content_hash(tx, ty, hx, hy)}

    if raw.kind == "image":
        device = resolve_device(params.device)
        stacked = raw.extra.get("stacked")
        budget = cfg.classifier_samples
        if stacked:  # modes are read channel by channel: a digit classifier, not one of 1,000 classes
            manifest["stacked"]["digit_classifier"] = _digit_classifier(tmp, tx, ty, hx, hy, params.seed, budget,
                                                                        device)
            outputs.append(tmp / "digit_classifier.pt")
        elif labelled:
            log.info("prepare: training the feature classifier (%s samples, %.1f epochs of %d images)",
                     f"{budget:,}", budget / len(tx), len(tx))
            model = C.train_classifier(tx, ty, len(raw.classes), seed=params.seed, samples=budget, device=device)
            C.save_classifier(model, tmp / "classifier.pt", {"data_hash": manifest["content_hash"]})
            outputs.append(tmp / "classifier.pt")
            manifest["independent"] = _independent_classifier(tmp, tx, ty, hx, hy, len(raw.classes), params.seed,
                                                              budget, device)
            outputs += [tmp / INDEPENDENT_FILE, tmp / "ref_train_independent.npz"]
        else:
            log.warning("prepare: %s has no labels, so no feature classifier is trained; image metrics use "
                        "the crude pixels extractor (put images in class sub-folders to get one)", cfg.dataset)
        key = extractor_key(cfg, tx.shape[1], labelled, bool(stacked))
        if key == "classifier" and stacked:
            raise DataError("prepare.extractor=classifier does not apply to stacked_mnist (1,000 classes of 3 "
                            "digits); use auto (stacked_digits: the digit classifier per channel) or inception")
        if key == "classifier" and not labelled:
            raise DataError(f"prepare.extractor=classifier needs labelled images; {cfg.dataset} has no labels "
                            "(use inception or pixels)")
        options = ({"weights": cfg.inception_weights, "url": cfg.inception_url, "resize": cfg.inception_resize}
                   if key == "inception" else {})
        weights_sha = None
        try:
            extractor = make_extractor(key, tmp, device, **options)
        except FileNotFoundError as e:
            raise DataError(str(e)) from None
        if key == "inception":  # the weights are read again by select and evaluate: part of their inputs
            from gan_models.features.inception import find_weights
            from gan_models.files import sha256_file

            w = find_weights(cfg.inception_weights)
            weights_sha = sha256_file(w) if w else None
        f_train, _ = extractor(tx, desc=f"{extractor.name} features, training split")
        f_held, logits_held = extractor(hx, desc=f"{extractor.name} features, held-out split")
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
        if extractor.preprocessing:
            info["preprocessing"] = extractor.preprocessing
        if key in ("classifier", "stacked_digits"):
            info["classifier_samples"] = budget
        if logits_held is not None:
            info["heldout_accuracy"] = float((logits_held.argmax(1) == hy).mean())
            info["is_heldout"] = list(M.inception_score(logits_held, splits=min(10, len(hx))))
        if key == "classifier":
            _judge_classifier(info["heldout_accuracy"], manifest["independent"]["heldout_accuracy"], budget, len(tx))
        manifest["extractor"] = info
        if translation and manifest["translation"]["ground_truth"] and ha.shape == hx.shape:
            manifest["translation"]["baselines"] = translation_baselines(ha, hx, hya if labelled else None,
                                                                         extractor, ref_train)
    write_record(tmp / "manifest.json", manifest, outputs)
    _swap_in(tmp, out)
    return _summary(out)


def _input_record(name: str, values: np.ndarray, raw) -> dict[str, Any]:
    """What the manifest says of one per-sample input: size, origin and the training split's spread."""
    v = values.reshape(len(values), -1).astype(np.float64)
    measured = name in ATTRIBUTES and name not in raw.inputs
    rec: dict[str, Any] = {"dim": int(v.shape[1]),
                           "source": "measured" if measured else f"prepare.inputs ({raw.extra.get('inputs_file')})",
                           "description": ATTRIBUTES.entry(name).description if measured else "user-provided"}
    if v.shape[1] == 1:
        q = np.percentile(v[:, 0], [5, 50, 95])
        rec.update({"mean": float(v.mean()), "std": float(v.std()), "p5": float(q[0]), "median": float(q[1]),
                    "p95": float(q[2])})
    return rec


def _digit_classifier(tmp: Path, tx, ty, hx, hy, seed: int, samples: int, device) -> dict[str, Any]:
    """Stacked MNIST's mode reader: the data set's classifier architecture trained on the distinct
    single-channel digits of the training images (their labels from the stacked labels), tested
    on the distinct digits of the held-out images, which come from other source digits.  Its
    errors bound every mode count, so its accuracy is reported beside them."""
    from gan_models.data import stacked_digits_of

    def digits(x, y):
        imgs = x.reshape(-1, 1, *x.shape[2:])  # image i's channel c at row 3 i + c
        labels = stacked_digits_of(y).reshape(-1)
        _, first = np.unique(imgs.reshape(len(imgs), -1), axis=0, return_index=True)
        first = np.sort(first)
        return imgs[first], labels[first]

    dx, dy = digits(tx, ty)
    dhx, dhy = digits(hx, hy)
    log.info("prepare: training the digit classifier on %d distinct digits (%s samples)", len(dx), f"{samples:,}")
    model = C.train_classifier(dx, dy, 10, seed=seed, samples=samples, device=device)
    C.save_classifier(model, tmp / "digit_classifier.pt")
    _, logits = C.features_and_logits(model, dhx, device=device)
    per_image = np.stack([C.features_and_logits(model, hx[:, c:c + 1], device=device)[1].argmax(1)
                          for c in range(hx.shape[1])], 1)
    return {"file": "digit_classifier.pt", "train_digits": int(len(dx)), "heldout_digits": int(len(dhx)),
            "heldout_accuracy": float((logits.argmax(1) == dhy).mean()),
            # all three digits of a held-out image read right: the share of modes it names correctly
            "heldout_mode_accuracy": float((per_image == stacked_digits_of(hy)).all(1).mean())}


INDEPENDENT_FILE = "classifier_independent.pt"
# Below this held-out accuracy the classifier's features make a weak FID: prepare says so and what to
# use instead.  (The default data's classifiers reach 0.95-0.97.)
WEAK_CLASSIFIER = 0.90


def extractor_key(cfg, channels: int, labelled: bool, stacked: bool) -> str:
    """The feature extractor ``prepare.extractor`` resolves to: as set, or (auto) the digit
    classifier per channel for Stacked MNIST, Inception for RGB images when its weights file is
    there, the data set's classifier for labelled images, else pixels."""
    if cfg.extractor != "auto":
        return cfg.extractor
    if stacked:
        return "stacked_digits"
    from gan_models.features.inception import find_weights

    if channels == 3 and find_weights(cfg.inception_weights) is not None:
        return "inception"
    return "classifier" if labelled else "pixels"


def _judge_classifier(accuracy: float, independent: float, samples: int, n_train: int) -> None:
    """Print the classifiers' held-out accuracy; warn, saying what to do, when it is low."""
    log.info("prepare: the feature classifier is %.1f%% accurate on held-out images (the independent one %.1f%%)",
             100 * accuracy, 100 * independent)
    if accuracy < WEAK_CLASSIFIER:
        log.warning("prepare: the feature classifier is only %.1f%% accurate on held-out images (below %.0f%%): FID "
                    "and the class metrics on its features say little. For RGB images put the FID Inception weights "
                    "file where prepare.inception_weights points (extractor auto then uses it; comparable with "
                    "published FIDs), or raise prepare.classifier_samples (now %s, %.1f epochs)",
                    100 * accuracy, 100 * WEAK_CLASSIFIER, f"{samples:,}", samples / n_train)


def _independent_classifier(tmp: Path, tx, ty, hx, hy, n_classes: int, seed: int, samples: int,
                            device) -> dict[str, Any]:
    """A second classifier that no recipe trains against: another architecture (StridedCNN), seed
    ``seed + 1``, the same training split.  Evaluation reports its confident share, classes and
    FID beside the data set's classifier's, so a recipe that used the first in training (a
    perceptual term on it) is still judged honestly."""
    log.info("prepare: training the independent classifier (%s samples)", f"{samples:,}")
    model = C.train_classifier(tx, ty, n_classes, seed=seed + 1, samples=samples, arch="strided", device=device)
    C.save_classifier(model, tmp / INDEPENDENT_FILE)
    f_train, _ = C.features_and_logits(model, tx, device=device, desc="independent classifier features, training split")
    f_held, logits_held = C.features_and_logits(model, hx, device=device)
    ref = M.reference_stats(f_train)
    ref.save(tmp / "ref_train_independent.npz")
    return {"file": INDEPENDENT_FILE, "arch": model.meta["arch"], "seed": seed + 1,
            "heldout_accuracy": float((logits_held.argmax(1) == hy).mean()),
            "fid_train_vs_heldout": M.fid(ref, f_held)}


def _written(a: np.ndarray, tmp: Path, split: str) -> bool:
    """Whether ``a`` is already the split's image file in ``tmp`` (memory-mapped)."""
    name = getattr(a, "filename", None)
    return name is not None and Path(name) == (tmp / ARRAY_FILES[split]).resolve()


def _source_arrays(src: dict[str, dict[str, np.ndarray]]) -> list[np.ndarray]:
    """The input domain's arrays in content-hash order (none for other data sets, whose hash is
    then what it always was)."""
    return [src[s][k] for s in ("train", "heldout") for k in ("a", "ya")] if src else []


BLUR_SIGMA = 1.0  # the blurred-input baseline: a Gaussian blur of this many pixels


def translation_baselines(source: np.ndarray, target: np.ndarray, labels, extractor, ref) -> dict[str, dict]:
    """What a translation must beat, computed as its outputs are: the input itself (identity)
    and a Gaussian-blurred input, against the held-out ground truth: L1, PSNR, SSIM, and with a
    classifier the label preservation and the FID to the training targets."""
    from scipy import ndimage

    blurred = np.clip(np.round(ndimage.gaussian_filter(source.astype(np.float64), (0, 0, BLUR_SIGMA, BLUR_SIGMA))),
                      0, 255).astype(np.uint8)
    out = {}
    for name, imgs in (("identity", source), ("blur", blurred)):
        row = {"l1": M.l1_error(imgs, target), "psnr": M.psnr(imgs, target), "ssim": M.ssim(imgs, target)}
        feats, logits = extractor(imgs)
        row["fid"] = M.fid(ref, feats)
        if labels is not None and logits is not None:
            row["label_preservation"] = M.label_preservation(logits, labels)
        out[name] = row
    out["blur"]["sigma"] = BLUR_SIGMA
    return out


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
