"""Stacked MNIST: the stacking and label arithmetic, the held-out digits, mode counting on
hand-built sample sets with known answers, the joint logits of the per-channel digit reader, and
the stages end to end against an independent recount."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gan_models import data as D
from gan_models.data import embedded as D_embedded
from gan_models.data import stacked as D_stacked
from gan_models import metrics as M


def _coded_digits(n_per_class=7):
    """Source 'digit images' that carry their own index in every pixel; class = index % 10."""
    n = 10 * n_per_class
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 4, 4)).copy()
    return x, np.arange(n) % 10


def test_stacking_puts_a_digit_of_each_drawn_class_in_each_channel_and_labels_read_as_numbers():
    x, y = _coded_digits()
    images, labels, digits = D_stacked.stack_digits(x, y, 500, np.random.default_rng(0))
    assert images.shape == (500, 3, 4, 4) and images.dtype == np.uint8
    source = images[:, :, 0, 0].astype(int)  # the source index of every channel
    assert (y[source] == digits).all()  # channel c shows a digit of class digits[:, c]
    assert (images == images[:, :, :1, :1]).all()  # whole source images, not mixed pixels
    np.testing.assert_array_equal(labels, digits[:, 0] * 100 + digits[:, 1] * 10 + digits[:, 2])
    np.testing.assert_array_equal(D.stacked_digits_of(labels), digits)
    assert D.stacked_label(np.array([[0, 0, 7], [3, 0, 9], [9, 9, 9]])).tolist() == [7, 309, 999]


def test_modes_are_drawn_uniformly():
    from scipy.stats import chisquare

    x, y = _coded_digits()
    _, labels, _ = D_stacked.stack_digits(x, y, 100_000, np.random.default_rng(1))
    counts = np.bincount(labels, minlength=1000)
    assert counts.min() > 0
    assert chisquare(counts).pvalue > 1e-3  # uniform over the 1,000 modes
    skewed = np.concatenate([labels, np.zeros(5000, int)])  # the test can fail: one mode inflated
    assert chisquare(np.bincount(skewed, minlength=1000)).pvalue < 1e-6


def test_held_out_images_stack_held_out_digits_only():
    raw = D_stacked.load_stacked_mnist(n_points=2000, seed=3)
    src = D_embedded.load_mnist_subset()
    train_src, held_src = D.split_indices(len(src.x), D_stacked.STACKED_HELDOUT, 3)
    key = lambda a: a.reshape(len(a), -1).tobytes()  # noqa: E731
    held_set = {key(src.x[i:i + 1]) for i in held_src}
    train_set = {key(src.x[i:i + 1]) for i in train_src}
    held_channels = raw.held.x.reshape(-1, 1, 28, 28)
    train_channels = raw.x.reshape(-1, 1, 28, 28)
    assert all(key(held_channels[i:i + 1]) in held_set for i in range(len(held_channels)))
    assert all(key(train_channels[i:i + 1]) in train_set for i in range(0, len(train_channels), 7))
    assert len(raw.x) == 1800 and len(raw.held.x) == 200 and raw.x.shape[1:] == (3, 28, 28)
    assert len(raw.classes) == 1000 and raw.classes[42] == "042"


def test_mode_counting_on_sets_with_known_answers():
    every = M.mode_histogram_metrics(np.arange(1000), 1000)
    assert every == {"modes_covered": 1000.0, "reverse_kl": pytest.approx(0.0, abs=1e-12)}
    one = M.mode_histogram_metrics(np.full(26_000, 417), 1000)
    assert one["modes_covered"] == 1.0 and one["reverse_kl"] == pytest.approx(math.log(1000), rel=1e-12)
    # a known histogram: 3/4 of the samples on mode 5, 1/4 on mode 9
    h = M.mode_histogram_metrics(np.array([5, 5, 5, 9] * 250), 1000)
    expected = 0.75 * math.log(0.75 * 1000) + 0.25 * math.log(0.25 * 1000)
    assert h["modes_covered"] == 2.0 and h["reverse_kl"] == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match=r"in \[0, 1000\)"):
        M.mode_histogram_metrics(np.array([1000]), 1000)


def test_the_stacked_extractor_combines_the_channels_log_probabilities(tmp_path):
    from gan_models.features.classifier import SmallCNN, features_and_logits, save_classifier
    from gan_models.features import EXTRACTORS

    torch.manual_seed(0)
    net = SmallCNN(1, 10).eval()
    save_classifier(net, tmp_path / "digit_classifier.pt")
    ext = EXTRACTORS.get("stacked_digits")(tmp_path)
    x = torch.randint(0, 256, (6, 3, 28, 28), dtype=torch.uint8)
    feats, joint = ext(x)
    per = [features_and_logits(net, x[:, c:c + 1]) for c in range(3)]
    np.testing.assert_allclose(feats, np.concatenate([f for f, _ in per], 1))
    lsm = [torch.log_softmax(torch.from_numpy(lg), 1).numpy() for _, lg in per]
    for i in range(6):
        for mode in (0, 7, 123, 999):
            d0, d1, d2 = mode // 100, mode // 10 % 10, mode % 10
            assert joint[i, mode] == pytest.approx(lsm[0][i, d0] + lsm[1][i, d1] + lsm[2][i, d2], abs=1e-9)
    np.testing.assert_allclose(np.exp(joint).sum(1), 1.0, rtol=1e-9)
    np.testing.assert_array_equal(D.stacked_digits_of(joint.argmax(1)),
                                  np.stack([lg.argmax(1) for _, lg in per], 1))


def test_stacked_mnist_stages_count_modes_as_an_independent_recount(project):
    from conftest import TINY, write_params
    from gan_models.checkpoint import load_checkpoint
    from gan_models.features.classifier import features_and_logits, load_classifier
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint
    from tasks.layout import Layout, load_prepared
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    doc = {**TINY, "prepare": {"dataset": "stacked_mnist", "n_points": 600, "classifier_samples": 1000},
           "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "parallel": 1,
                     "variants": {"dcgan": {"generator": {"width": 8}, "discriminator": {"width": 8}, "z_dim": 8}}},
           "select": {"n_samples": 50}, "evaluate": {"n_samples": 300}}
    write_params(project / "params.yaml", doc)
    params = load_params(project / "params.yaml")
    prepare(params)
    layout = Layout()
    prep = load_prepared(layout)
    st = prep.manifest["stacked"]
    assert prep.info.shape == (3, 28, 28) and prep.info.n_classes == 1000 and len(prep.held_x) == 60
    assert prep.manifest["extractor"]["name"] == "stacked_digits" and not (layout.prepared / "classifier.pt").exists()
    reader = load_classifier(layout.prepared / "digit_classifier.pt")
    # the reader's recorded accuracies, recounted: per distinct held-out digit, and per image
    per_image = np.stack([features_and_logits(reader, prep.held_x[:, c:c + 1])[1].argmax(1) for c in range(3)], 1)
    truth = D.stacked_digits_of(prep.held_y)
    assert st["digit_classifier"]["heldout_mode_accuracy"] == pytest.approx(float((per_image == truth).all(1).mean()))
    train(params, "dcgan", progress=False)
    select(params, "dcgan")
    m = evaluate(params, "dcgan")
    G, z_dim = generator_from_checkpoint(load_checkpoint(layout.best_checkpoint("dcgan")))
    fake = sample(G, 300, z_dim, params.evaluate.seed)
    read = np.stack([features_and_logits(reader, fake[:, c:c + 1])[1].argmax(1) for c in range(3)], 1)
    modes = read[:, 0] * 100 + read[:, 1] * 10 + read[:, 2]
    counts = np.bincount(modes, minlength=1000)
    p = counts[counts > 0] / 300
    assert m["modes_covered"] == float((counts > 0).sum())
    assert m["reverse_kl"] == pytest.approx(float((p * np.log(p * 1000)).sum()), rel=1e-9)
    assert m["classes_covered"] == m["modes_covered"] and "all three" in m["mode_reader"]
