"""The pieces the time-to-quality work added to the pipeline: the independent classifier (another
architecture and seed) that scores what the data set's classifier may have been trained against,
and the largest-class share."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gan_models import metrics as M


def test_the_independent_classifier_is_another_network_and_evaluate_reports_its_verdict(tiny_params):
    from gan_models.features.classifier import StridedCNN, SmallCNN, features_and_logits, load_classifier
    from gan_models.checkpoint import load_checkpoint
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint
    from tasks.layout import Layout, load_prepared
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    prepare(tiny_params)
    layout = Layout()
    prep = load_prepared(layout)
    info = prep.manifest["independent"]
    main, indep = load_classifier(layout.prepared / "classifier.pt"), load_classifier(layout.prepared / info["file"])
    assert isinstance(main, SmallCNN) and isinstance(indep, StridedCNN)
    assert info["seed"] == tiny_params.seed + 1 and info["arch"] == "strided"
    _, logits = features_and_logits(indep, prep.held_x)
    assert info["heldout_accuracy"] == pytest.approx(float((logits.argmax(1) == prep.held_y).mean()))
    assert info["heldout_accuracy"] > 0.5  # it learned the digits (chance: 0.1)

    train(tiny_params, "mlp", progress=False)
    select(tiny_params, "mlp")
    m = evaluate(tiny_params, "mlp")
    # recomputed here from the selected checkpoint, the classifier file and its saved statistics
    G, z_dim = generator_from_checkpoint(load_checkpoint(layout.best_checkpoint("mlp")))
    fake = sample(G, tiny_params.evaluate.n_samples, z_dim, tiny_params.evaluate.seed)
    feats, lg = features_and_logits(indep, fake)
    ref = M.ReferenceStats.load(layout.prepared / "ref_train_independent.npz")
    p = np.exp(lg - lg.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    assert m["independent_fid"] == pytest.approx(M.fid(ref, feats), rel=1e-9)
    assert m["independent_confident_fraction"] == pytest.approx(float((p.max(1) >= 0.9).mean()))
    hist = np.bincount(p.argmax(1), minlength=10) / len(p)
    assert m["independent_max_class_fraction"] == pytest.approx(hist.max())
    assert m["independent_classes_covered"] == float((hist > 0).sum())
    assert m["independent_fid"] != pytest.approx(m["fid"])  # another feature space
    assert "strided CNN, seed 1" in m["independent_classifier"]
    recorded = json.loads((layout.root / "metrics" / "mlp.json").read_text())
    assert recorded["independent_fid"] == m["independent_fid"]
    assert "label_agreement" not in m  # an unconditional variant is asked for no class


def test_the_independent_classifier_reads_its_own_architecture_back(tmp_path):
    from gan_models.features.classifier import StridedCNN, features_and_logits, load_classifier, save_classifier

    torch.manual_seed(0)
    net = StridedCNN(1, 10).eval()
    save_classifier(net, tmp_path / "c.pt")
    back = load_classifier(tmp_path / "c.pt")
    x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8)
    f1, l1 = features_and_logits(net, x)
    f2, l2 = features_and_logits(back, x)
    assert type(back) is StridedCNN and f1.shape == (5, 64)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(l1, l2)


def test_a_conditional_variant_reports_how_often_its_samples_show_the_class_asked_for(project):
    from conftest import TINY, run_stages
    from gan_models.features.classifier import features_and_logits, load_classifier
    from gan_models.training import balanced_labels, sample
    from tasks.layout import Layout

    doc = {**TINY, "train": {**TINY["train"], "parallel": 1, "variants": {
        "cgan": {"generator": {"arch": "mlp", "hidden": [32]}, "discriminator": {"arch": "mlp", "hidden": [32]},
                 "z_dim": 8}}}}
    params, m, G, z_dim = run_stages(project, doc, "cgan")
    layout = Layout()
    n = params.evaluate.n_samples
    _, logits = features_and_logits(load_classifier(layout.prepared / "classifier.pt"),
                                    sample(G, n, z_dim, params.evaluate.seed))
    asked = balanced_labels(n, 10).numpy()
    assert m["label_agreement"] == pytest.approx(float((logits.argmax(1) == asked).mean()))
