"""Each stage as a plain function on the tiny configuration (no Prefect, no MLflow)."""

from __future__ import annotations

import json
import warnings
from collections import Counter

import numpy as np
import pytest
import scipy.linalg
import scipy.special
import torch

from conftest import TINY, write_params
from gan_models import checkpoint as ck
from gan_models.files import atomic_write_bytes, sha256_file
from gan_models.data import DataError, split_indices
from tasks.layout import Layout, load_prepared
from tasks.config import load_params
from tasks.evaluate import evaluate
from tasks.export import export
from tasks.prepare import prepare
from tasks.select import select
from tasks.train import train


def _weights(path):
    return ck.load_checkpoint(path)["G"]


def test_prepare_writes_a_verified_versioned_data_set(tiny_params, project):
    s = prepare(tiny_params)
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["counts"]["train"] + m["counts"]["heldout"] == 1797
    assert m["counts"]["heldout"] == round(1797 * 0.1)
    # scikit-learn's digits hold 0..16, which prepare rescales to the full 0..255 of uint8 images
    assert m["shape"] == [1, 8, 8] and m["value_range"] == [0.0, 255.0]
    assert s["content_hash"] == m["content_hash"]
    prep = load_prepared(Layout())
    assert len(prep.train_x) == m["counts"]["train"]
    # Disjoint split that covers the source: the multiset of (label, image) rows of train and
    # held-out together is exactly scikit-learn's digits (values 0..16 rescaled to 0..255), so no
    # image is in both splits beyond the duplicates the source itself has, and none is lost.
    from sklearn.datasets import load_digits

    src = load_digits()
    src_x = np.round(src.images * (255.0 / 16.0)).astype(np.uint8)
    rows = lambda xs, ys: Counter((int(y), x.tobytes()) for x, y in zip(xs, ys))  # noqa: E731
    source = rows(src_x, src.target)
    tr, he = rows(prep.train_x[:, 0], prep.train_y), rows(prep.held_x[:, 0], prep.held_y)
    assert tr + he == source
    assert all(tr[k] + he[k] <= source[k] for k in tr.keys() & he.keys())  # shared rows are source duplicates
    assert sum(he.values()) == m["counts"]["heldout"]
    # ... and the split is the seeded permutation split_indices documents: disjoint index sets
    train_idx, held_idx = split_indices(1797, 0.1, TINY["seed"])
    assert not set(train_idx.tolist()) & set(held_idx.tolist())
    assert sorted([*train_idx.tolist(), *held_idx.tolist()]) == list(range(1797))
    np.testing.assert_array_equal(prep.train_x[:, 0], src_x[train_idx])
    np.testing.assert_array_equal(prep.held_x[:, 0], src_x[held_idx])
    np.testing.assert_array_equal(prep.held_y, src.target[held_idx])
    assert m["extractor"]["heldout_accuracy"] > 0.5  # a classifier trained for 2 epochs, far above chance
    # Deterministic: a second prepare in another folder gives the same content hash.
    again = prepare(tiny_params, Layout(project / "again"))
    assert again["content_hash"] == s["content_hash"]
    # Tampering is detected.
    x = np.load(project / "data/prepared/train_x.npy")
    x[0, 0, 0, 0] ^= 1
    np.save(project / "data/prepared/train_x.npy", x)
    with pytest.raises(DataError, match="train_x.npy is corrupt or was changed"):
        load_prepared(Layout())
    # and a damaged reference-statistics file too, named by its path
    prepare(tiny_params, Layout(project / "fresh"))
    ref = project / "fresh/data/prepared/ref_heldout.npz"
    ref.write_bytes(ref.read_bytes()[:100])
    with pytest.raises(DataError, match="ref_heldout.npz is corrupt"):
        load_prepared(Layout(project / "fresh"))


def test_full_stage_chain_on_tiny_config(tiny_params, project):
    prepare(tiny_params)
    for v in tiny_params.variant_names:
        t = train(tiny_params, v, progress=False)
        assert t["steps"] == 20
        d = Layout().train_dir(v)
        assert [e["step"] for e in ck.read_index(d)] == [10, 20]
        hist = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        assert [h["step"] for h in hist] == [5, 10, 15, 20]
        assert {"D/real", "D/fake", "grad_norm/D", "grad_norm/G", "loss/D", "loss/G"} <= set(hist[0])
        s = select(tiny_params, v)
        rec = json.loads((Layout().selected_dir(v) / "selection.json").read_text())
        assert len(rec["candidates"]) == 2
        fids = {c["step"]: c["scores"]["fid"] for c in rec["candidates"]}
        assert rec["best_step"] == min(fids, key=fids.get) == s["best_step"]
        assert sha256_file(Layout().best_checkpoint(v)) == rec["best_sha256"]
        evaluate(tiny_params, v)
        m = json.loads((project / f"metrics/{v}.json").read_text())
        assert m["n_samples"] == 200 and m["extractor"] == "classifier"
        assert {"kid_mean", "kid_std", "precision", "recall", "density", "coverage"} <= set(m)
        _check_final_metrics_independently(tiny_params, v, m)
        e = export(tiny_params, v)
        out = project / "samples" / v
        for f in ("grid.png", "interpolation.png", "samples.npz", "images/000.png", "images/001.png"):
            assert (out / f).exists(), f
        with np.load(out / "samples.npz") as arr:
            assert arr["x"].shape == (50, 1, 8, 8) and arr["x"].dtype == np.uint8
        assert e["step"] == m["step"] == s["best_step"]


def _fid_scipy(real: np.ndarray, fake: np.ndarray) -> float:
    """pytorch-fid's formula: ||mu_r - mu_g||^2 + tr(S_r + S_g - 2 sqrtm(S_r S_g))."""
    mean_term = float(((real.mean(0) - fake.mean(0)) ** 2).sum())
    # Features constant in both sets (dead ReLU units) add nothing to the covariance terms; leaving
    # them out keeps sqrtm's argument well conditioned.
    live = (real.std(0) > 0) | (fake.std(0) > 0)
    s_r, s_g = np.cov(real[:, live], rowvar=False), np.cov(fake[:, live], rowvar=False)
    with warnings.catch_warnings():  # S_g is singular when fewer live features than samples: fine
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        covmean = scipy.linalg.sqrtm(s_r @ s_g)
    return mean_term + float(np.trace(s_r) + np.trace(s_g) - 2 * np.trace(covmean).real)


def _is_numpy(logits: np.ndarray, splits: int) -> tuple[float, float]:
    """exp(mean_x KL(p(y|x) || p(y))) per consecutive split, with scipy's softmax and rel_entr."""
    p = scipy.special.softmax(logits, axis=1)
    size = len(p) // splits
    scores = []
    for i in range(splits):
        part = p[i * size:(i + 1) * size]
        scores.append(np.exp(scipy.special.rel_entr(part, part.mean(0, keepdims=True)).sum(1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _check_final_metrics_independently(params, variant, m):
    """Redraw the samples the evaluate stage draws from the selected checkpoint, put them and the
    real training images through the prepared classifier, and recompute FID (scipy's sqrtm), IS
    and the class-histogram metrics here."""
    from gan_models.features import load_for
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint

    layout = Layout()
    sel = json.loads((layout.selected_dir(variant) / "selection.json").read_text())
    ckpt = ck.load_checkpoint(layout.best_checkpoint(variant), sel["best_sha256"])
    assert m["step"] == ckpt["step"] == sel["best_step"]
    G, z_dim = generator_from_checkpoint(ckpt)
    cfg = params.evaluate
    fake = sample(G, cfg.n_samples, z_dim, cfg.seed)
    assert fake.shape == (200, 1, 8, 8)
    manifest = json.loads((layout.prepared / "manifest.json").read_text())
    extractor = load_for(layout.prepared, manifest)
    real_x = np.load(layout.prepared / "train_x.npy")
    with np.load(layout.prepared / "train.npz") as f:
        real_y = f["y"]
    real_feats, _ = extractor(real_x)
    fake_feats, logits = extractor(fake)
    assert m["fid"] == pytest.approx(_fid_scipy(real_feats, fake_feats), rel=1e-6)
    is_mean, is_std = _is_numpy(logits, min(cfg.is_splits, len(logits)))
    assert m["is_mean"] == pytest.approx(is_mean, rel=1e-9)
    assert m["is_std"] == pytest.approx(is_std, rel=1e-6, abs=1e-12)
    pred = logits.argmax(1)
    assert m["classes_covered"] == len(set(pred.tolist()))
    p_max = scipy.special.softmax(logits, axis=1).max(1)
    assert m["confident_fraction"] == pytest.approx(float((p_max >= 0.9).mean()), abs=1e-12)
    hist = np.bincount(pred, minlength=10) / len(pred)
    freq = np.bincount(real_y, minlength=10) / len(real_y)
    nz = hist > 0
    assert m["kl_class_hist"] == pytest.approx(float((hist[nz] * np.log(hist[nz] / freq[nz])).sum()),
                                               rel=1e-9, abs=1e-12)


def test_resumed_training_is_bit_identical_to_an_uninterrupted_run(tiny_params, project):
    prepare(tiny_params)
    train(tiny_params, "dcgan", progress=False)
    straight = _weights(Layout().train_dir("dcgan") / "step_0000020.pt")
    # Interrupted: train to step 10 only, then rerun the same command to step 20.
    write_params(project / "short.yaml", {**TINY, "train": {**TINY["train"], "steps": 10}})
    layout = Layout(project / "other")
    prepare(tiny_params, layout)
    train(load_params(project / "short.yaml"), "dcgan", layout, progress=False)
    assert [e["step"] for e in ck.read_index(layout.train_dir("dcgan"))] == [10]
    train(tiny_params, "dcgan", layout, progress=False)
    resumed = _weights(layout.train_dir("dcgan") / "step_0000020.pt")
    assert straight.keys() == resumed.keys()
    for k in straight:
        assert torch.equal(straight[k], resumed[k]), k


def test_a_crash_between_history_and_checkpoint_writes_loses_no_history(tiny_params, project, monkeypatch):
    """The train stage writes two files per checkpoint, the history and the checkpoint; a process
    killed between them (here: the second history write fails, as a SIGKILL would stop it) must
    resume to the history of an uninterrupted run."""
    import tasks.train as train_mod

    class Killed(BaseException):
        pass

    prepare(tiny_params)
    train(tiny_params, "dcgan", progress=False)
    straight = (Layout().train_dir("dcgan") / "history.jsonl").read_text()
    layout = Layout(project / "other")
    prepare(tiny_params, layout)
    real_write, calls = train_mod._write_history, []

    def dies_on_second(out, history):
        calls.append(len(history))
        if len(calls) == 2:
            raise Killed
        return real_write(out, history)

    monkeypatch.setattr(train_mod, "_write_history", dies_on_second)
    with pytest.raises(Killed):
        train(tiny_params, "dcgan", layout, progress=False)
    monkeypatch.setattr(train_mod, "_write_history", real_write)
    assert [e["step"] for e in ck.read_index(layout.train_dir("dcgan"))] == [10]  # the step-20 one never written
    train(tiny_params, "dcgan", layout, progress=False)
    assert (layout.train_dir("dcgan") / "history.jsonl").read_text() == straight


def test_stages_skip_when_up_to_date_and_rerun_when_settings_change(tiny_params, project):
    prepare(tiny_params)
    train(tiny_params, "mlp", progress=False)
    ckpt = Layout().train_dir("mlp") / "step_0000020.pt"
    mtime = ckpt.stat().st_mtime_ns
    train(tiny_params, "mlp", progress=False)
    assert ckpt.stat().st_mtime_ns == mtime  # nothing redone
    changed = load_params(project / "params.yaml", ["train.variants.mlp.lr_g=0.001"])
    train(changed, "mlp", progress=False)
    assert ckpt.stat().st_mtime_ns != mtime


def test_corrupt_checkpoint_is_skipped_and_never_selected(tiny_params, project):
    prepare(tiny_params)
    train(tiny_params, "mlp", progress=False)
    d = Layout().train_dir("mlp")
    data = (d / "step_0000020.pt").read_bytes()
    (d / "step_0000020.pt").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(ck.CheckpointError, match="corrupt or truncated"):
        ck.load_checkpoint(d / "step_0000020.pt", ck.read_index(d)[-1]["sha256"])
    s = select(tiny_params, "mlp")
    assert s["best_step"] == 10
    rec = json.loads((Layout().selected_dir("mlp") / "selection.json").read_text())
    assert "corrupt" in rec["candidates"][1]["invalid"]
    # Training falls back to the previous good checkpoint: a rerun redoes steps 11..20.
    again = train(tiny_params, "mlp", progress=False)
    assert again["steps_trained"] == 10
    ck.load_checkpoint(d / "step_0000020.pt", ck.read_index(d)[-1]["sha256"])  # whole again


def test_checkpoints_load_without_unpickling_code(tmp_path):
    import pickle

    pwned = tmp_path / "pwned"  # where the payload would write, wherever the test runs

    class Evil:
        def __reduce__(self):
            return (exec, (f"open({str(pwned)!r}, 'w').write('x')",))

    atomic_write_bytes(tmp_path / "evil.pt", pickle.dumps({"format": ck.FORMAT, "x": Evil()}, protocol=2))
    with pytest.raises(ck.CheckpointError, match="cannot be read safely"):
        ck.load_checkpoint(tmp_path / "evil.pt")
    assert not pwned.exists()


def test_ring_data_runs_through_train_select_evaluate_export(project):
    write_params(project / "params.yaml", {
        **TINY, "prepare": {"dataset": "ring", "n_points": 2000},
        # Long enough (about 5 s) that samples reach the 3-std discs of several modes, so the
        # recount below checks the high-quality threshold, not only the nearest centre.
        "train": {**TINY["train"], "steps": 1500, "checkpoint_every": 500, "log_every": 500, "batch_size": 64,
                  "variants": {"mlp": {"z_dim": 2, "generator": {"hidden": [64, 64, 64]},
                                       "discriminator": {"hidden": [64, 64]}, "lr_g": 2e-4, "lr_d": 2e-4}}}})
    params = load_params(project / "params.yaml")
    prepare(params)
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["kind"] == "points" and len(m["centers"]) == 8 and m["std"] == 0.01
    train(params, "mlp", progress=False)
    s = select(params, "mlp")
    assert s["metric"] == "modes"
    evaluate(params, "mlp")
    metrics = json.loads((project / "metrics/mlp.json").read_text())
    # Recount on the samples the evaluate stage draws (selected checkpoint, evaluate.seed), against
    # the ring's closed form: 8 centres at angles 2 pi k / 8 on the unit circle, std 0.01.
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint

    angles = 2 * np.pi * np.arange(8) / 8
    centers = np.stack([np.cos(angles), np.sin(angles)], 1)
    np.testing.assert_allclose(np.asarray(m["centers"]), centers, atol=1e-12)
    sel = json.loads((Layout().selected_dir("mlp") / "selection.json").read_text())
    G, z_dim = generator_from_checkpoint(ck.load_checkpoint(Layout().best_checkpoint("mlp"), sel["best_sha256"]))
    pts = sample(G, params.evaluate.n_samples, z_dim, params.evaluate.seed).double().numpy()
    assert pts.shape == (200, 2)
    covered, hq_total, nearest_all = set(), 0, []
    for p in pts:  # one sample at a time, the nearest centre by brute force
        dists = [float(np.hypot(*(p - c))) for c in centers]
        k = int(np.argmin(dists))
        nearest_all.append(k)
        if dists[k] <= 3 * 0.01:
            covered.add(k)
            hq_total += 1
    assert len(covered) >= 2 and 0 < hq_total < 200  # a case where the threshold matters
    assert metrics["modes_covered"] == len(covered)
    assert metrics["high_quality_fraction"] == pytest.approx(hq_total / 200, abs=1e-12)
    hist = np.bincount(nearest_all, minlength=8) / 200
    nz = hist > 0
    assert metrics["reverse_kl"] == pytest.approx(float((hist[nz] * np.log(hist[nz] * 8)).sum()), rel=1e-9, abs=1e-12)
    export(params, "mlp")
    assert (project / "samples/mlp/scatter.png").exists()


def test_folder_data_set_with_class_subfolders(project):
    from PIL import Image

    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (project / "imgs" / cls).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)).save(project / "imgs" / cls / f"{i}.png")
    write_params(project / "params.yaml", {**TINY, "prepare": {"dataset": "folder", "root": "imgs", "image_size": 8,
                                                              "classifier_samples": 1000}})
    params = load_params(project / "params.yaml")
    prepare(params)
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["classes"] == ["cats", "dogs"] and m["shape"] == [3, 8, 8] and m["labelled"]
    (project / "imgs" / "cats" / "broken.png").write_bytes(b"not a png")
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="cannot read image .*broken.png"):  # refused before any work
        load_params(project / "params.yaml", ["prepare.max_samples=20"])


def test_missing_inputs_give_clear_errors(tiny_params, project, tmp_path):
    with pytest.raises(DataError, match="run the prepare stage first"):
        train(tiny_params, "mlp", progress=False)
    prepare(tiny_params)
    with pytest.raises(DataError, match="python -m flows train --variant mlp first"):
        select(tiny_params, "mlp")
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="prepare.root: .*nope' is not a folder"):
        load_params(project / "params.yaml", ["prepare.dataset=folder", f"prepare.root={tmp_path / 'nope'}",
                                              "prepare.image_size=8", "prepare.channels=1"])
    with pytest.raises(ConfigError, match="train.batch_size: 2000 is more than the 1617 training samples"):
        load_params(project / "params.yaml", ["train.batch_size=2000"])
    params = load_params(project / "params.yaml", ["prepare.dataset=mnist", f"prepare.root={tmp_path}"])
    with pytest.raises(DataError, match="not found under"):
        prepare(params)


def test_perceptual_loss_on_the_data_sets_classifier_through_the_train_stage(project):
    write_params(project / "params.yaml", {
        **TINY, "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "log_every": 2,
                          "variants": {"perc": {"preset": "dcgan", "z_dim": 8, "generator": {"width": 8},
                                                "discriminator": {"width": 8},
                                                "tricks": {"perceptual_weight": 0.5}}}}})
    params = load_params(project / "params.yaml")
    prepare(params)
    train(params, "perc", progress=False)
    hist = [json.loads(line) for line in (Layout().train_dir("perc") / "history.jsonl").read_text().splitlines()]
    assert all(h["loss/G_perceptual"] > 0 for h in hist)


def test_selection_never_picks_a_diverged_checkpoint(tiny_params, project):
    prepare(tiny_params)
    train(tiny_params, "mlp", progress=False)
    d = Layout().train_dir("mlp")
    # Rewrite step 10 as a diverged checkpoint (NaN weights), recorded properly in the index.
    entry = ck.read_index(d)[0]
    bad = ck.load_checkpoint(d / entry["file"], entry["sha256"])
    for k in bad["G"]:
        bad["G"][k] = torch.full_like(bad["G"][k], float("nan"))
    (d / entry["file"]).unlink()
    ck.save_checkpoint(d, 10, {k: v for k, v in bad.items() if k not in ("format", "step")})
    s = select(tiny_params, "mlp")
    rec = json.loads((Layout().selected_dir("mlp") / "selection.json").read_text())
    assert s["best_step"] == 20
    assert "NaN" in rec["candidates"][0]["invalid"]
