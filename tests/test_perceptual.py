"""LPIPS against the lpips package itself, the clfpips construction against a NumPy transcription of
its definition, and the diversity score: its pair sampling, per-class variant and its power to tell a
collapsed set from real digits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import scipy.stats
import torch
import torchvision

from gan_models.features import perceptual as P
from gan_models.metrics import diversity as DIV


def _random_backbone(net: str, folder, seed: int = 0) -> tuple[torch.nn.Module, object]:
    """A torchvision backbone with random weights, written where torch hub would cache it."""
    builder, filename, _ = P.BACKBONES[net]
    torch.manual_seed(seed)
    model = getattr(torchvision.models, builder)(weights=None)
    path = folder / "hub" / "checkpoints" / filename
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), path)
    return model, path


def _package_lpips(net: str, backbone: torch.nn.Module):
    """The lpips package's own LPIPS, its trunk given ``backbone``'s weights by hand."""
    import lpips

    ref = lpips.LPIPS(net=net, pnet_rand=True, verbose=False)
    for part in (ref.net.slice1, ref.net.slice2, ref.net.slice3, ref.net.slice4, ref.net.slice5):
        for name, module in part.named_children():
            module.load_state_dict(backbone.features[int(name)].state_dict())
    return ref.eval()


@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_lpips_equals_the_lpips_package_with_the_same_backbone_weights(net, tmp_path, monkeypatch):
    backbone, path = _random_backbone(net, tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # the default loading path: torch hub's checkpoints
    ours = P.lpips(net)
    assert ours.name == f"lpips-{net}" and path.name in ours.files
    ref = _package_lpips(net, backbone)
    g = torch.Generator().manual_seed(1)
    x, y = torch.rand(3, 3, 64, 64, generator=g) * 2 - 1, torch.rand(3, 3, 64, 64, generator=g) * 2 - 1
    with torch.no_grad():
        want = ref(x, y).flatten().double().numpy()
    np.testing.assert_allclose(ours(x, y), want, rtol=0, atol=1e-5)
    assert want.min() > 1e-3  # distinct random images: the comparison is not of zeros
    # grey 28 px digits: repeated to 3 channels and resized to 64 px as the package needs them
    a = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=g)
    b = torch.randint(0, 256, (2, 1, 28, 28), dtype=torch.uint8, generator=g)
    prepared = P.lpips_input(a)
    assert prepared.shape == (2, 3, 64, 64) and torch.equal(prepared[:, 0], prepared[:, 2])
    with torch.no_grad():
        want = ref(P.lpips_input(a), P.lpips_input(b)).flatten().double().numpy()
    np.testing.assert_allclose(ours(a, b), want, rtol=0, atol=1e-5)
    # an explicit path is read instead of the hub folder
    moved = tmp_path / "elsewhere.pth"
    path.rename(moved)
    with pytest.raises(FileNotFoundError, match=f"put torchvision's {path.name} there"):
        P.lpips(net)
    np.testing.assert_allclose(P.lpips(net, moved)(a, b), want, rtol=0, atol=1e-5)


def test_lpips_is_zero_on_identical_images_and_symmetric(tmp_path):
    _, path = _random_backbone("alex", tmp_path)
    d = P.lpips("alex", path)
    g = torch.Generator().manual_seed(2)
    x, y = torch.rand(4, 1, 28, 28, generator=g) * 2 - 1, torch.rand(4, 1, 28, 28, generator=g) * 2 - 1
    np.testing.assert_allclose(d(x, x), 0.0, atol=1e-12)
    np.testing.assert_allclose(d(x, y), d(y, x), rtol=1e-12)
    assert d(x, y).min() > 0


def test_a_file_that_is_not_the_backbone_is_refused_by_name(tmp_path):
    bad = tmp_path / "alexnet-owt-7be5be79.pth"
    torch.save({"features.0.weight": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="is not torchvision's alexnet weights file"):
        P.lpips("alex", bad)


def _classifier_file(tmp_path, seed: int = 0):
    from gan_models.features.classifier import SmallCNN, save_classifier

    torch.manual_seed(seed)
    model = SmallCNN(1, 10).eval()
    path = tmp_path / "classifier.pt"
    save_classifier(model, path)
    return model, path


def _clfpips_numpy(model, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The construction as written in the module docstring, in NumPy: ReLU maps after conv1, conv2,
    conv3, unit channel vectors, squared differences summed over channels, averaged over space."""
    def maps(a):
        h = torch.as_tensor(a).float() / 127.5 - 1
        out = []
        with torch.no_grad():
            for i, layer in enumerate(model.body[:7]):
                h = layer(h)
                if isinstance(layer, torch.nn.ReLU):
                    out.append(h.double().numpy())
        return out
    total = np.zeros(len(x))
    for a, b in zip(maps(x), maps(y)):
        na = a / (np.sqrt((a ** 2).sum(1, keepdims=True)) + 1e-10)
        nb = b / (np.sqrt((b ** 2).sum(1, keepdims=True)) + 1e-10)
        total += ((na - nb) ** 2).sum(1).mean(axis=(1, 2))
    return total


def test_clfpips_equals_its_definition_and_is_a_distance_like_lpips(tmp_path):
    model, path = _classifier_file(tmp_path)
    d = P.classifier_pips(path)
    assert d.name == "clfpips" and d.weights is None
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 256, (5, 1, 28, 28), dtype=np.uint8)
    np.testing.assert_allclose(d(x, y), _clfpips_numpy(model, x, y), rtol=1e-6)
    np.testing.assert_allclose(d(x, x), 0.0, atol=1e-12)
    np.testing.assert_allclose(d(x, y), d(y, x), rtol=1e-12)
    with pytest.raises(FileNotFoundError, match="needs the prepare stage's classifier"):
        P.classifier_pips(tmp_path / "missing.pt")


def test_random_pairs_are_distinct_and_uniform_over_ordered_pairs():
    i, j = DIV.random_pairs(4, 12000, np.random.default_rng(0))
    assert (i != j).all()
    counts = np.bincount(i * 4 + j, minlength=16).reshape(4, 4)
    assert (np.diag(counts) == 0).all()
    off = counts[~np.eye(4, dtype=bool)]
    assert scipy.stats.chisquare(off).pvalue > 1e-3  # 12 equally likely ordered pairs


class _Flat(P.PerceptualDistance):
    """A distance with a closed form: images of shape (N, 2, 1, 1) are 2-vectors, d = |u/|u| - v/|v||^2."""

    def __init__(self):
        super().__init__("flat", "flat", lambda x: [x.double()], lambda x: x.float(), None, {})


def test_diversity_within_classes_and_overall_against_the_closed_form():
    # class 0: 50 copies of (1, 0); class 1: 50 copies of (0, 1): d = 2 across classes, 0 within
    imgs = torch.zeros(100, 2, 1, 1)
    imgs[:50, 0] = 1
    imgs[50:, 1] = 1
    labels = np.repeat([0, 1], 50)
    d = _Flat()
    assert DIV.mean_pairwise(d, imgs, 200, seed=0, labels=labels) == 0.0
    # overall: a random ordered pair crosses classes with probability 2 * 50 * 50 / (100 * 99)
    cross = 2 * 50 * 50 / (100 * 99)
    got = DIV.mean_pairwise(d, imgs, 20000, seed=0)
    assert got == pytest.approx(2 * cross, abs=2 * 0.015)
    scores = DIV.diversity_scores(d, imgs[:50], imgs, 20000, seed=0)
    assert scores["flat_diversity"] == 0.0 and scores["flat_diversity_ratio"] == 0.0  # one class: collapsed
    assert scores["flat_diversity_real"] == pytest.approx(2 * cross, abs=2 * 0.015)
    with pytest.raises(ValueError, match="real images are all alike"):
        DIV.diversity_scores(d, imgs, imgs[:50], 100, seed=0)


def test_clfpips_diversity_tells_a_collapsed_set_from_real_digits(tiny_params, project):
    """On the prepared 8x8 digits with the classifier the prepare stage trains: two disjoint halves of
    the real training split are about equally diverse; the 1s alone are far less so."""
    from tasks.layout import Layout, load_prepared
    from tasks.prepare import prepare

    prepare(tiny_params)
    prep = load_prepared(Layout())
    d = P.classifier_pips(Layout().prepared / "classifier.pt")
    x, y = prep.train_x, prep.train_y
    half = len(x) // 2
    real_a = DIV.mean_pairwise(d, x[:half], 2000, seed=0)
    real_b = DIV.mean_pairwise(d, x[half:], 2000, seed=1)
    ones = DIV.mean_pairwise(d, x[y == 1], 2000, seed=2)
    assert 0.85 < real_b / real_a < 1.15
    assert ones / real_a < 0.8


def test_evaluate_records_the_diversity_and_a_conditional_variant_per_class(project, tiny_params):
    """The evaluate stage's diversity scores equal the NumPy construction on the very samples and pairs
    it draws; a conditional variant gets the per-class scores too."""
    from gan_models import checkpoint as ck
    from gan_models.features.classifier import load_classifier
    from gan_models.training import balanced_labels, sample
    from gan_models.variants import generator_from_checkpoint
    from tasks.layout import Layout, load_prepared
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    doc = tiny_params.to_dict()
    doc["train"]["variants"] = {"cgan": {"preset": "cgan", "generator": {"width": 8},
                                         "discriminator": {"width": 8}, "z_dim": 8}}
    doc["evaluate"]["diversity"] = {"n_pairs": 300}
    (project / "params.yaml").write_text(json.dumps(doc))
    params = load_params(project / "params.yaml")
    prepare(params)
    train(params, "cgan", progress=False)
    select(params, "cgan")
    m = evaluate(params, "cgan")
    assert m["diversity_distance"] == "clfpips" and "not LPIPS" in m["diversity_note"]
    layout = Layout()
    sel = json.loads((layout.selected_dir("cgan") / "selection.json").read_text())
    G, z_dim = generator_from_checkpoint(ck.load_checkpoint(layout.best_checkpoint("cgan"), sel["best_sha256"]))
    assert G.n_classes == 10
    fake = sample(G, 200, z_dim, params.evaluate.seed)
    real = load_prepared(layout).train_x
    model = load_classifier(layout.prepared / "classifier.pt")

    def mean_pairs(x, rng):
        i = rng.integers(0, len(x), 300)
        j = (i + rng.integers(1, len(x), 300)) % len(x)
        u8 = lambda t: ((np.asarray(t, dtype=np.float64) + 1) * 127.5) if t.dtype != np.uint8 else t  # noqa: E731
        return float(_clfpips_numpy(model, u8(x[i]), u8(x[j])).mean())
    want_fake = mean_pairs(fake.numpy(), np.random.default_rng(params.evaluate.seed))
    want_real = mean_pairs(real, np.random.default_rng(params.evaluate.seed))
    assert m["clfpips_diversity"] == pytest.approx(want_fake, rel=1e-5)
    assert m["clfpips_diversity_real"] == pytest.approx(want_real, rel=1e-5)
    assert m["clfpips_diversity_ratio"] == pytest.approx(want_fake / want_real, rel=1e-5)
    labels = balanced_labels(200, 10).numpy()
    assert {"clfpips_diversity_class", "clfpips_diversity_class_real", "clfpips_diversity_class_ratio"} <= set(m)
    assert 0 < m["clfpips_diversity_class"] < m["clfpips_diversity"] * 1.5 and len(set(labels)) == 10


def test_lpips_without_its_backbone_file_is_refused_before_any_work(project, tmp_path):
    from conftest import cli

    env = {"TORCH_HOME": str(tmp_path / "empty-torch-home")}
    r = cli("check", "--set", "evaluate.diversity.net=alex", cwd=project, env=env)
    assert r.returncode == 2, r.stderr
    assert "alexnet-owt-7be5be79.pth" in r.stderr and str(tmp_path / "empty-torch-home") in r.stderr
    assert not (project / "data").exists()
    _random_backbone("alex", tmp_path / "empty-torch-home")
    assert cli("check", "--set", "evaluate.diversity.net=alex", cwd=project, env=env).returncode == 0
