"""The FID Inception extractor, with weight files the tests create (no download)."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models.inception import Inception3

from conftest import TINY, write_params
from gan_models.features.inception import WEIGHTS_NAME, FIDInception, load_fid_inception


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory):
    torch.manual_seed(0)
    model = FIDInception()
    for m in model.modules():  # random but well-scaled weights, BatchNorm in eval
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = tmp_path_factory.mktemp("w") / WEIGHTS_NAME
    torch.save(model.net.state_dict(), path)
    return path, model.eval()


def test_state_dict_layout_is_torchvisions_inception3_with_1008_classes():
    # pytorch-fid's weight file is a state dict of exactly this layout.
    ours = FIDInception().net.state_dict()
    ref = Inception3(num_classes=1008, aux_logits=False, init_weights=False).state_dict()
    assert list(ours) == list(ref)
    assert all(ours[k].shape == ref[k].shape for k in ref)


def test_loads_weights_from_a_path_and_gives_pool3_features_and_logits(weights_file):
    path, original = weights_file
    model = load_fid_inception(path)
    x = torch.rand(2, 1, 28, 28) * 2 - 1
    with torch.no_grad():
        f, logits = model(x)
        f0, _ = original(x)
    assert f.shape == (2, 2048) and logits.shape == (2, 1008)
    torch.testing.assert_close(f, f0)
    assert (f >= 0).all()  # after ReLU and average pooling


def test_inception_features_do_not_depend_on_the_batch_size(weights_file):
    from gan_models.features import EXTRACTORS

    path, _ = weights_file
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    f1, l1 = EXTRACTORS.get("inception")(None, weights=str(path), batch_size=5)(x)
    f2, l2 = EXTRACTORS.get("inception")(None, weights=str(path), batch_size=2)(x)
    torch.testing.assert_close(torch.from_numpy(f1), torch.from_numpy(f2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(torch.from_numpy(l1), torch.from_numpy(l2), rtol=1e-4, atol=1e-5)


def test_finds_weights_in_the_torch_hub_cache(weights_file, tmp_path, monkeypatch):
    path, _ = weights_file
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=f"put the file {WEIGHTS_NAME}.*hub/checkpoints"):
        load_fid_inception()
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / WEIGHTS_NAME).write_bytes(path.read_bytes())
    assert isinstance(load_fid_inception(), FIDInception)


def test_refuses_a_file_that_is_not_inception_weights(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="does not hold FID Inception weights"):
        load_fid_inception(bad)


@pytest.mark.slow
def test_pipeline_stages_with_the_inception_extractor(weights_file, project):
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    path, original = weights_file
    write_params(project / "params.yaml", {
        **TINY, "prepare": {"dataset": "digits", "max_samples": 40, "heldout_fraction": 0.25, "classifier_samples": 1000,
                            "extractor": "inception", "inception_weights": str(path)},
        "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "batch_size": 8,
                  "variants": {"mlp": TINY["train"]["variants"]["mlp"]}},
        "select": {"n_samples": 12}, "evaluate": {"n_samples": 20, "is_splits": 2}})
    params = load_params(project / "params.yaml")
    prepare(params)
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["extractor"]["name"] == "inception" and m["extractor"]["feature_dim"] == 2048
    train(params, "mlp", progress=False)
    select(params, "mlp")
    evaluate(params, "mlp")
    metrics = json.loads((project / "metrics/mlp.json").read_text())
    assert metrics["extractor"] == "inception" and metrics["n_samples"] == 20

    # Recompute IS and FID here from the samples the evaluate stage draws (the selected checkpoint,
    # evaluate.seed), put through the same weights file by the reference network built above.
    import numpy as np
    import scipy.special

    from gan_models import checkpoint as ck
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint

    sel = json.loads((project / "models/mlp/selected/selection.json").read_text())
    G, z_dim = generator_from_checkpoint(ck.load_checkpoint(project / "models/mlp/selected/best.pt",
                                                            sel["best_sha256"]))
    fake = sample(G, 20, z_dim, params.evaluate.seed)
    real_u8 = np.load(project / "data/prepared/train_x.npy")
    with torch.no_grad():
        f_fake, logits = (t.double().numpy() for t in original(fake))
        f_real = original(torch.from_numpy(real_u8).float() / 127.5 - 1)[0].double().numpy()
    # IS: exp(mean KL(p(y|x) || p(y))) over 2 consecutive splits of 10, from scipy's softmax.
    p = scipy.special.softmax(logits, axis=1)
    parts = [np.exp(scipy.special.rel_entr(q, q.mean(0, keepdims=True)).sum(1).mean()) for q in (p[:10], p[10:])]
    # (random weights give nearly uniform p(y|x), so IS is 1 + O(1e-4): compare the excess over 1)
    assert metrics["is_mean"] - 1 == pytest.approx(np.mean(parts) - 1, rel=1e-6)
    assert metrics["is_std"] == pytest.approx(np.std(parts), rel=1e-5)
    # FID, 30 real and 20 generated 2048-d features: with A = (X_r - mu_r) / sqrt(n_r - 1) and
    # B likewise, tr sqrt(S_r S_g) is the sum of the singular values of A B^T (S_r S_g = A^T A B^T B
    # has the non-zero eigenvalues of (A B^T)(A B^T)^T), a closed form that needs no 2048-d sqrtm.
    assert len(f_real) == 30
    a = (f_real - f_real.mean(0)) / np.sqrt(len(f_real) - 1)
    b = (f_fake - f_fake.mean(0)) / np.sqrt(len(f_fake) - 1)
    tr_covmean = np.linalg.svd(a @ b.T, compute_uv=False).sum()
    fid = ((f_real.mean(0) - f_fake.mean(0)) ** 2).sum() + (a * a).sum() + (b * b).sum() - 2 * tr_covmean
    assert metrics["fid"] == pytest.approx(fid, rel=1e-6)


def test_auto_picks_inception_for_rgb_images_when_its_weights_file_is_there(weights_file, project, tmp_path):
    """RGB images and the weights file: auto is Inception (with the configured resize, named in
    the manifest); without the file, the data set's classifier."""
    from benchmarks.folder_data import make_folder
    from tasks.config import load_params
    from tasks.prepare import prepare

    path, _ = weights_file
    folder = make_folder(tmp_path / "rgb", 60, size=16, workers=1)
    doc = {**TINY, "prepare": {"dataset": "folder", "root": str(folder), "heldout_fraction": 0.25,
                               "classifier_samples": 500, "inception_weights": str(path), "inception_resize": "clean"}}
    write_params(project / "params.yaml", doc)
    prepare(load_params(project / "params.yaml"))
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["extractor"]["key"] == "inception" and m["extractor"]["options"]["resize"] == "clean"
    assert "clean-fid" in m["extractor"]["preprocessing"] and m["shape"] == [3, 16, 16]
    # The same settings with the file gone: prepare is not up to date (the file is its input) and
    # auto falls back to the data set's classifier
    aside = path.rename(tmp_path / "aside.pth")
    try:
        prepare(load_params(project / "params.yaml"))
    finally:
        aside.rename(path)
    m = json.loads((project / "data/prepared/manifest.json").read_text())
    assert m["extractor"]["key"] == "classifier" and "classifier_samples" in m["extractor"]
