"""The FID Inception extractor, with weight files the tests create (no download)."""

from __future__ import annotations

import json

import pytest
import torch
from torchvision.models.inception import Inception3

from conftest import TINY, write_params
from gan_models.inception import WEIGHTS_NAME, FIDInception, load_fid_inception


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

    path, _ = weights_file
    write_params(project / "params.yaml", {
        **TINY, "prepare": {"dataset": "digits", "max_samples": 40, "heldout_fraction": 0.25, "classifier_epochs": 1,
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
    metrics = evaluate(params, "mlp")
    assert metrics["extractor"] == "inception" and metrics["fid"] > 0 and metrics["is_mean"] >= 1.0
