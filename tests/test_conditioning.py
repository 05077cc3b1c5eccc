"""Several conditioning inputs: measured attributes (closed forms), a folder's per-image inputs
(validation, exit 2), the projection discriminator and the fused generator against hand-computed
formulas, the bank of real conditions, and the agreement metrics."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_models.data import attributes as A
from gan_models.networks import conditioning as C
from gan_models.data import DataError, DataInfo, read_inputs
from gan_models.data.translation import thicken, thin
from gan_models.variants import build, resolve

from conftest import TINY, cli, write_params

INFO = DataInfo("image", (1, 16, 16), 10, inputs=(("thickness", 1), ("slant", 1), ("emb", 3)))


def _canvas(size: int = 28) -> np.ndarray:
    return np.zeros((1, 1, size, size), np.uint8)


# -- measured attributes ----------------------------------------------------------------------------
@pytest.mark.parametrize("t,length", [(1, 10), (2, 12), (4, 16)])
def test_thickness_of_a_bar_is_twice_its_area_over_its_perimeter(t, length):
    x = _canvas()
    x[0, 0, 5:5 + length, 10:10 + t] = 255
    got = A.measure(x, ["thickness"])["thickness"][0]
    assert got == pytest.approx(2 * length * t / (2 * length + 2 * t), rel=1e-6)


def test_width_and_height_of_a_solid_rectangle_are_its_sides_in_the_uniform_bar_sense():
    x = _canvas()
    x[0, 0, 3:14, 5:12] = 255  # 11 rows, 7 columns
    m = A.measure(x, ["width", "height"])
    assert m["width"][0] == pytest.approx(np.sqrt(7 ** 2 - 1), rel=1e-6)
    assert m["height"][0] == pytest.approx(np.sqrt(11 ** 2 - 1), rel=1e-6)


@pytest.mark.parametrize("shear", [1, -1, 0])
def test_slant_of_a_sheared_line_is_its_shear(shear):
    x = _canvas()
    for i, row in enumerate(range(4, 24)):
        x[0, 0, row, 14 - shear * (i - 10)] = 255  # one pixel per row, moving left going down when shear > 0
    assert A.measure(x, ["slant"])["slant"][0] == pytest.approx(shear, abs=1e-9)


def test_model_range_floats_measure_as_their_uint8_images():
    rng = np.random.default_rng(0)
    x = (rng.random((5, 1, 12, 12)) > 0.6).astype(np.uint8) * rng.integers(100, 256, (5, 1, 12, 12)).astype(np.uint8)
    a = A.measure(x)
    b = A.measure(x.astype(np.float32) / 127.5 - 1.0)
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-5)


def test_real_digits_measure_thicker_when_dilated_and_thinner_when_eroded():
    from gan_models.data.embedded import load_mnist_subset

    x = load_mnist_subset().x[:300]
    base = A.measure(x, ["thickness"])["thickness"]
    assert (A.measure(thicken(x), ["thickness"])["thickness"] > base).mean() > 0.95
    assert (A.measure(thin(x), ["thickness"])["thickness"] < base).mean() > 0.9


def test_pearson_matches_scipy():
    from scipy.stats import pearsonr

    rng = np.random.default_rng(1)
    a = rng.normal(size=500)
    b = 0.6 * a + rng.normal(size=500)
    assert A.pearson(a, b) == pytest.approx(pearsonr(a, b)[0], abs=1e-12)
    assert np.isnan(A.pearson(a, np.ones(500)))


# -- networks ---------------------------------------------------------------------------------------
def _multi(preset: str = "dcgan", inputs=("label", "thickness", "emb"), **over):
    spec = resolve(preset, {"generator": {"width": 8}, "discriminator": {"width": 8}, "z_dim": 6,
                                 "conditioning": {"inputs": list(inputs), "embed": 4}, **over})
    torch.manual_seed(0)
    return build(spec, INFO)


def _rows(n: int = 40, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat([(torch.arange(n) % 10).float()[:, None], 1 + 2 * torch.rand(n, 1, generator=g),
                      torch.randn(n, 3, generator=g)], 1)


def _encode_by_hand(enc: C.ConditionEncoder, c: torch.Tensor) -> torch.Tensor:
    """The fused condition from the encoder's weights: embedding row, Linear-LeakyReLU-Linear."""
    c = c.double()
    parts = [enc.branches["label"].weight.double()[c[:, 0].long()]]
    for name, lo, hi in enc.slices[1:]:
        v = (c[:, lo:hi] - enc.mean[lo:hi].double()) / enc.std[lo:hi].double()
        l1, l2 = enc.branches[name][0], enc.branches[name][2]
        h = F.leaky_relu(v @ l1.weight.double().T + l1.bias.double(), 0.2)
        parts.append(h @ l2.weight.double().T + l2.bias.double())
    return torch.cat(parts, 1)


def test_projection_discriminator_adds_the_inner_product_of_the_projected_condition_and_the_features():
    gan = _multi()
    D = gan.D.double().eval()
    C.fit(gan.G, [gan.G.encoder, D.encoder], _rows(), seed=0)
    x = torch.randn(5, 1, 16, 16, dtype=torch.float64)
    c = _rows(5, seed=3)
    inner = D.inner.forward_all(x, None)
    e = _encode_by_hand(D.encoder, c)
    expected = inner["logits"] + ((e @ D.project.weight.double().T) * inner["features"]).sum(1)
    torch.testing.assert_close(D(x, c.double()), expected, rtol=1e-10, atol=1e-10)
    # the condition matters: another label changes the logit
    other = c.clone()
    other[:, 0] = (other[:, 0] + 1) % 10
    assert (D(x, other.double()) - D(x, c.double())).abs().min() > 0


def test_projection_is_added_to_every_scale_of_a_multi_scale_discriminator():
    gan = _multi(discriminator={"width": 8, "scales": 2})
    D = gan.D.eval()
    x, c = torch.randn(3, 1, 16, 16), _rows(3)
    inner = D.inner.forward_all(x, None)
    proj = (D.project(D.encoder(c)) * inner["features"]).sum(1)
    assert inner["logits"].shape == (3, 2)
    torch.testing.assert_close(D(x, c), inner["logits"] + proj[:, None])


def test_projection_reaches_every_patch_of_a_patch_discriminator():
    gan = _multi(discriminator={"arch": "patchgan", "width": 8})
    D = gan.D.eval()
    x, c = torch.randn(4, 1, 16, 16), _rows(4)
    inner = D.inner.forward_all(x, None)
    proj = (D.project(D.encoder(c)) * inner["features"]).sum(1)
    assert inner["logits"].dim() == 4
    torch.testing.assert_close(D(x, c), inner["logits"] + proj[:, None, None, None])


def test_the_generator_feeds_the_noise_and_the_fused_condition_to_the_wrapped_generator():
    gan = _multi()
    G = gan.G.double().eval()
    C.fit(G, [G.encoder], _rows(), seed=0)
    z, c = torch.randn(4, 6, dtype=torch.float64), _rows(4, seed=5).double()
    expected = G.inner(torch.cat([z, _encode_by_hand(G.encoder, c)], 1), None)
    torch.testing.assert_close(G(z, c), expected, rtol=1e-10, atol=1e-10)
    thicker = c.clone()
    thicker[:, 1] += 1.0
    assert not torch.allclose(G(z, thicker), G(z, c))
    with pytest.raises(ValueError, match="conditioned on label, thickness, emb"):
        G(z, None)


def test_stylegan_style_mixing_redraws_the_noise_but_keeps_the_condition():
    gan = _multi("stylegan", generator={"width": 4, "max_width": 8, "mixing_prob": 1.0},
                 discriminator={"width": 4, "max_width": 8})
    inner = gan.G.inner
    assert inner.fixed_tail == gan.G.encoder.out_dim
    seen = []
    inner.mapping.register_forward_hook(lambda m, args, out: seen.append(args[0].clone()))
    C.fit(gan.G, [gan.G.encoder], _rows(), seed=0)
    gan.G.train()(torch.randn(3, 6), _rows(3))
    first, second = seen  # the main w, then the mixing w
    tail = gan.G.encoder.out_dim
    torch.testing.assert_close(first[:, -tail:], second[:, -tail:])
    assert not torch.allclose(first[:, :-tail], second[:, :-tail])


def test_fit_standardises_every_encoder_and_fills_a_class_balanced_bank_of_real_rows():
    gan = _multi()
    rows = _rows(200)
    C.fit(gan.G, [gan.G.encoder, gan.D.encoder], rows, seed=0)
    for enc in (gan.G.encoder, gan.D.encoder):
        torch.testing.assert_close(enc.mean[1:], rows[:, 1:].mean(0), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(enc.std[1:], rows[:, 1:].std(0), rtol=1e-5, atol=1e-6)
        assert enc.mean[0] == 0 and enc.std[0] == 1  # the label column is an index
    bank = gan.G.bank
    assert torch.equal(bank[:, 0], (torch.arange(C.BANK) % 10).float())
    # every bank row is one of the real rows, not a mixture of them
    assert ((bank[:, None, :] - rows[None]).abs().sum(-1).min(1).values == 0).all()
    asked = C.conditions_for(gan.G, 25)
    assert torch.equal(C.requested_labels(gan.G, asked), torch.arange(25) % 10)


def test_inputs_the_data_lacks_and_packing_are_refused_naming_what_exists():
    with pytest.raises(ValueError, match="'ink' is not in this data set; it has: label, emb, slant, thickness"):
        _multi(inputs=("label", "ink"))
    with pytest.raises(ValueError, match="tricks.pack"):
        _multi(tricks={"pack": 2})
    with pytest.raises(ValueError, match="conditioning.inputs must be a non-empty list"):
        _multi(inputs=())
    with pytest.raises(ValueError, match="unknown conditioning key"):
        resolve("dcgan", {"conditioning": {"inputs": ["label"], "fusion": "film"}})


# -- a folder's own per-image inputs -----------------------------------------------------------------
def _folder(tmp_path, n_per_class: int = 2):
    from PIL import Image

    root = tmp_path / "images"
    files = []
    for cls in ("a", "b"):
        (root / cls).mkdir(parents=True)
        for i in range(n_per_class):
            img = np.zeros((16, 16), np.uint8)
            img[2:14, 2:2 + i + 1] = 255
            Image.fromarray(img).save(root / cls / f"{cls}{i}.png")
            files.append(root / cls / f"{cls}{i}.png")
    return root, sorted(files)


def test_csv_inputs_are_matched_to_their_images_by_path(tmp_path):
    root, files = _folder(tmp_path)
    (tmp_path / "in.csv").write_text("file,size,score\nb/b1.png,2,0.5\na/a0.png,1,-1\nb0.png,1,3\na/a1.png,2,7\n")
    got = read_inputs(tmp_path / "in.csv", root, files)
    # sorted order: a/a0, a/a1, b/b0, b/b1
    np.testing.assert_array_equal(got["size"], [1, 2, 1, 2])
    np.testing.assert_array_equal(got["score"], [-1, 7, 3, 0.5])


@pytest.mark.parametrize("text,message", [
    ("file,size\na/a0.png,1\na/a1.png,2\nb/b0.png,1\n", r"no row for image b/b1.png; every image needs one"),
    ("file,size\na/a0.png,1\na/a9.png,2\n", r"row 3: no image 'a/a9.png'"),
    ("file,size\na/a0.png,1\na/a1.png,thick\n", r"row 3, column size: 'thick' is not a finite number"),
    ("file,size\na/a0.png,1\na/a0.png,2\n", r"row 3: image a/a0.png is listed twice \(first on row 2\)"),
    ("name,size\na/a0.png,1\n", r"the first row .* must name the columns, starting with `file`"),
    ("file,size\na/a0.png,1,2\n", r"row 2 has 3 values, expected 2"),
    ("file,2nd\na/a0.png,1\n", r"column '2nd' .* is not a usable input name"),
])
def test_bad_csv_inputs_are_refused_naming_the_file_and_row(tmp_path, text, message):
    root, files = _folder(tmp_path)
    (tmp_path / "in.csv").write_text(text)
    with pytest.raises(DataError, match=message) as e:
        read_inputs(tmp_path / "in.csv", root, files)
    assert "in.csv" in str(e.value)


def test_npy_inputs_become_one_vector_input_named_after_the_file(tmp_path):
    root, files = _folder(tmp_path)
    vec = np.arange(12, dtype=np.float64).reshape(4, 3)
    np.save(tmp_path / "text_embedding.npy", vec)
    got = read_inputs(tmp_path / "text_embedding.npy", root, files)
    np.testing.assert_array_equal(got["text_embedding"], vec.astype(np.float32))
    np.save(tmp_path / "short.npy", vec[:3])
    with pytest.raises(DataError, match=r"short.npy' has 3 rows but .* has 4 images"):
        read_inputs(tmp_path / "short.npy", root, files)
    vec[2, 1] = np.nan
    np.save(tmp_path / "bad.npy", vec)
    with pytest.raises(DataError, match=r"bad.npy' row 2 \(image b/b0.png\) is not finite"):
        read_inputs(tmp_path / "bad.npy", root, files)


def test_prepare_keeps_each_images_inputs_through_the_split(tmp_path, monkeypatch):
    from tasks.layout import Layout, load_prepared
    from tasks.config import load_params
    from tasks.prepare import prepare

    root, files = _folder(tmp_path, n_per_class=10)
    (tmp_path / "in.csv").write_text("file,size\n" + "".join(
        f"{f.relative_to(root).as_posix()},{int(f.stem[1:]) + 1}\n" for f in files))
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path / "params.yaml", {**TINY, "prepare": {"dataset": "folder", "root": str(root),
                                                                 "inputs": str(tmp_path / "in.csv"),
                                                                 "classifier_samples": 1000}})
    prepare(load_params(tmp_path / "params.yaml"), Layout())
    prep = load_prepared(Layout())
    assert {k for k, _ in prep.info.inputs} == {"size", "thickness", "slant", "width", "height"}
    assert prep.manifest["inputs"]["size"]["source"].startswith("prepare.inputs")
    for x, c in ((prep.train_x, prep.train_c), (prep.held_x, prep.held_c)):
        ink_columns = (x[:, 0] > 0).any(1).sum(1)  # image i has a bar i+1 pixels wide
        np.testing.assert_array_equal(c["size"], ink_columns)
        np.testing.assert_allclose(c["thickness"], A.measure(x, ["thickness"])["thickness"])


def test_the_cli_refuses_a_bad_inputs_file_with_exit_2_and_writes_nothing(tmp_path):
    root, files = _folder(tmp_path)
    (tmp_path / "in.csv").write_text("file,size\na/a0.png,1\n")
    write_params(tmp_path / "params.yaml", {**TINY, "prepare": {"dataset": "folder", "root": str(root),
                                                                 "inputs": str(tmp_path / "in.csv")},
                                            "train": {**TINY["train"], "batch_size": 2}})
    proc = cli("prepare", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "in.csv' has no row for image a/a1.png and 2 more; every image needs one" in proc.stderr
    assert not (tmp_path / "data" / "prepared").exists()


# -- is the condition obeyed? -----------------------------------------------------------------------
def test_attribute_agreement_is_high_when_the_requested_thickness_is_drawn_and_low_when_not():
    from tasks.evaluate import attribute_agreement

    info = DataInfo("image", (1, 28, 28), 10, inputs=(("thickness", 1),))
    spec = resolve("multimodal", {"conditioning": {"inputs": ["label", "thickness"]}})
    gan = build(spec, info)
    g = torch.Generator().manual_seed(0)
    rows = torch.cat([(torch.arange(300) % 10).float()[:, None], torch.randint(1, 6, (300, 1), generator=g).float()], 1)
    C.fit(gan.G, [gan.G.encoder], rows, seed=0)
    asked = C.conditions_for(gan.G, 200)[:, 1].long()

    def bars(widths):
        x = -torch.ones(len(widths), 1, 28, 28)
        for i, t in enumerate(widths.tolist()):
            x[i, 0, 4:24, 10:10 + t] = 1.0
        return x

    obeyed = attribute_agreement(gan.G, bars(asked))
    length = 20
    expected_mae = (asked.float() - 2 * length * asked.float() / (2 * length + 2 * asked.float())).abs().mean()
    assert obeyed["attr_r_thickness"] > 0.99
    assert obeyed["attr_mae_thickness"] == pytest.approx(float(expected_mae), rel=1e-5)
    assert obeyed["attr_r_thickness_within_class"] > 0.99
    ignored = attribute_agreement(gan.G, bars(asked[torch.randperm(200, generator=g)]))
    assert abs(ignored["attr_r_thickness"]) < 0.25


def test_within_class_correlation_removes_what_the_label_alone_explains():
    """A G that draws each class at its class's typical thickness plus noise of its own, ignoring
    the requested thickness, correlates overall (thickness differs by class) but not within a class."""
    from tasks.evaluate import attribute_agreement

    info = DataInfo("image", (1, 28, 28), 10, inputs=(("thickness", 1),))
    gan = build(resolve("multimodal", {"conditioning": {"inputs": ["label", "thickness"]}}), info)
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(400) % 10
    thick = (labels % 5 + 1).float() + torch.randint(0, 2, (400,), generator=g).float()  # class mean + noise
    C.fit(gan.G, [gan.G.encoder], torch.stack([labels.float(), thick], 1), seed=0)
    asked = C.conditions_for(gan.G, 300)
    own = torch.randint(0, 2, (300,), generator=torch.Generator().manual_seed(7))  # independent of the request
    x = -torch.ones(300, 1, 28, 28)
    for i, k in enumerate(asked[:, 0].long().tolist()):
        x[i, 0, 4:24, 10:10 + k % 5 + 1 + int(own[i])] = 1.0  # the class's thickness, not the requested one
    scores = attribute_agreement(gan.G, x)
    assert scores["attr_r_thickness"] > 0.7
    assert abs(scores["attr_r_thickness_within_class"]) < 0.2
