"""Image-to-image translation (pix2pix, CycleGAN) through the pipeline: the data sets and their
splits, the image pool, the loss terms against closed forms, training and resuming, the stages'
translation metrics, bad folders, and one end-to-end run of both presets with MLflow and DVC."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import TINY, cli, copy_project, venv_path, write_params
from gan_models import data as D
from gan_models.data import translation as D_translation
from gan_models import losses as L
from gan_models import variants as V
from gan_models.training import Trainer, generate

SHAPE = (1, 28, 28)
PAIRED = V.DataInfo("image", SHAPE, 10, translation="paired", source_shape=SHAPE)
UNPAIRED = V.DataInfo("image", SHAPE, 10, translation="unpaired", source_shape=SHAPE)


# -- data ---------------------------------------------------------------------------------------------
def _neighbourhood(x: np.ndarray, footprint: np.ndarray, reduce) -> np.ndarray:
    """An explicit loop over every pixel's 3x3 neighbourhood (scipy's default 'reflect' border is
    numpy's 'symmetric' padding)."""
    p = np.pad(x.astype(np.int32), ((0, 0), (0, 0), (1, 1), (1, 1)), mode="symmetric")
    out = np.empty_like(x, dtype=np.int32)
    offsets = [(i, j) for i in range(3) for j in range(3) if footprint[i, j]]
    h, w = x.shape[-2:]
    for r in range(h):
        for c in range(w):
            out[:, :, r, c] = reduce(np.stack([p[:, :, r + i, c + j] for i, j in offsets]), axis=0)
    return out


def test_translation_transforms_match_an_explicit_neighbourhood_loop():
    x = np.random.default_rng(0).integers(0, 256, (3, 1, 9, 11)).astype(np.uint8)
    square = np.ones((3, 3), bool)
    dil, ero = _neighbourhood(x, square, np.max), _neighbourhood(x, square, np.min)
    np.testing.assert_array_equal(D_translation.edge_map(x), (dil - ero).astype(np.uint8))
    np.testing.assert_array_equal(D_translation.thicken(x), dil.astype(np.uint8))
    # thin: each pixel the minimum of itself and its upper, left and upper-left neighbours (the
    # 2x2 square's), the first row and column reflected
    upper_left = np.zeros((3, 3), bool)
    upper_left[:2, :2] = True
    np.testing.assert_array_equal(D_translation.thin(x), _neighbourhood(x, upper_left, np.min).astype(np.uint8))
    stroke = np.zeros((1, 1, 9, 9), np.uint8)
    stroke[..., 3:6] = 200  # a vertical stroke 3 px wide: 2 px thin, 5 px thick
    assert (D_translation.thin(stroke)[0, 0, 4] > 0).sum() == 2 and (D_translation.thicken(stroke)[0, 0, 4] > 0).sum() == 5


def _coded(n: int, task: str) -> D.RawData:
    """Images that carry their own index (every pixel = i), with labels i % 10."""
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 4, 4)).copy()
    y = np.arange(n) % 10
    return D.RawData(x, y, "image", classes=[str(i) for i in range(10)], translation=task, source=x.copy(), source_y=y,
                     aligned=True)


@pytest.mark.parametrize("task", ["paired", "unpaired"])
def test_translation_split_keeps_counterparts_held_out_and_no_pairs_in_unpaired_training(task):
    from tasks.config import PrepareConfig
    from tasks.prepare import _split_translation

    parts = _split_translation(_coded(200, task), PrepareConfig(heldout_fraction=0.1), seed=3)
    (tx, _), (ta, _) = parts["train"], parts["train_source"]
    (hx, hy), (ha, hya) = parts["heldout"], parts["heldout_source"]
    ids = lambda a: set(a[:, 0, 0, 0].tolist())  # noqa: E731
    assert len(hx) == 20 and parts["ground_truth"]
    np.testing.assert_array_equal(ha, hx)  # every held-out input has its true counterpart
    np.testing.assert_array_equal(hya, hy)
    assert not ids(hx) & (ids(tx) | ids(ta))  # held-out images are never trained on
    if task == "paired":
        np.testing.assert_array_equal(ta, tx)  # pairs, in order
        assert len(tx) == 180
    else:
        assert not ids(ta) & ids(tx)  # disjoint halves: no image is in both domains' training sets
        assert len(ta) == len(tx) == 90


# -- the image pool and the loss terms ------------------------------------------------------------------
def _reference_pool(batches, size, seed):
    """CycleGAN's ImagePool written out as a plain list, with the same random draws."""
    g = torch.Generator().manual_seed(seed)
    buf, outs = [], []
    for batch in batches:
        out = []
        for img in batch:
            if len(buf) < size:
                buf.append(img.clone())
                out.append(img.clone())
            elif torch.rand((), generator=g).item() < 0.5:
                i = torch.randint(0, size, (), generator=g).item()
                out.append(buf[i].clone())
                buf[i] = img.clone()
            else:
                out.append(img.clone())
        outs.append(torch.stack(out))
    return outs, buf


def test_image_pool_matches_a_hand_written_reference():
    batches = [torch.full((4, 1, 2, 2), float(k)) + torch.arange(4.0)[:, None, None, None] / 10 for k in range(12)]
    pool = L.ImagePool(6, generator=torch.Generator().manual_seed(7))
    outs = [pool.query(b) for b in batches]
    ref, buf = _reference_pool(batches, 6, 7)
    for got, want in zip(outs, ref):
        assert torch.equal(got, want)
    assert torch.equal(pool.images, torch.stack(buf))
    # the buffer filled first (outputs were the inputs), then old images came back out
    assert torch.equal(outs[0], batches[0]) and any(not torch.equal(o, b) for o, b in zip(outs[2:], batches[2:]))
    swapped = sum(int((o != b).flatten(1).any(1).sum()) for o, b in zip(outs[2:], batches[2:]))
    assert 0.3 < swapped / (4 * 10) < 0.7  # about half the images of a full pool are swapped
    # state round trip: a restored pool continues identically
    clone = L.ImagePool(6, generator=torch.Generator().manual_seed(99))
    clone.load_state_dict(pool.state_dict())
    clone.generator.set_state(pool.generator.get_state())
    nxt = torch.randn(4, 1, 2, 2)
    assert torch.equal(clone.query(nxt), pool.query(nxt))
    assert torch.equal(L.ImagePool(0).query(nxt), nxt)


class _Affine(torch.nn.Module):
    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = torch.nn.Parameter(torch.tensor(scale)), torch.nn.Parameter(torch.tensor(shift))

    def forward(self, x, y=None):
        return x * self.scale + self.shift


class _ConstD(torch.nn.Module):
    def __init__(self, value):
        super().__init__()
        self.value = value
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, y=None):
        return torch.full((x.shape[0], 1, 2, 2), self.value) + 0 * self.w + 0 * x.mean()


class _Ctx:
    def __init__(self, batch):
        self.b = batch

    def batch(self):
        return self.b


def test_cycle_and_identity_terms_equal_their_closed_forms():
    from gan_models.networks.translation import DiscriminatorPair, TranslatorPair

    a = torch.tensor([[[[0.2, -0.4], [0.6, 1.0]]]])
    b = torch.tensor([[[[-0.1, 0.3], [0.5, -0.7]]]])
    G = TranslatorPair(_Affine(0.5, 0.1), _Affine(2.0, -0.3))  # ab(x) = 0.5x + 0.1, ba(x) = 2x - 0.3
    loss = L.CycleGANLoss(cycle_weight=10.0, identity_weight=0.5, pool_size=0)
    t = loss.cycle_terms(G, a, b)
    an, bn = a.numpy(), b.numpy()
    ab = lambda x: 0.5 * x + 0.1  # noqa: E731
    ba = lambda x: 2 * x - 0.3  # noqa: E731
    cycle = np.abs(ba(ab(an)) - an).mean() + np.abs(ab(ba(bn)) - bn).mean()
    identity = np.abs(ab(bn) - bn).mean() + np.abs(ba(an) - an).mean()
    assert float(t["cycle"].detach()) == pytest.approx(cycle, rel=1e-6)
    assert float(t["identity"].detach()) == pytest.approx(identity, rel=1e-6)
    # the whole G objective with D_B = 0.3 and D_A = -0.2 everywhere
    D = DiscriminatorPair(_ConstD(0.3), _ConstD(-0.2))
    stats = loss.accumulate_gradients("G", G, D, _Ctx(L.Batch(b, None, torch.zeros(1, 0), None, a)))
    expected = (0.3 - 1) ** 2 + (-0.2 - 1) ** 2 + 10 * cycle + 10 * 0.5 * identity
    assert float(stats["loss/G"]) == pytest.approx(expected, rel=1e-6)
    d_stats = loss.accumulate_gradients("D", G, D, _Ctx(L.Batch(b, None, torch.zeros(1, 0), None, a)))
    assert float(d_stats["loss/D"]) == pytest.approx(0.5 * ((0.3 - 1) ** 2 + 0.3 ** 2), rel=1e-6)
    assert float(d_stats["loss/D_A"]) == pytest.approx(0.5 * ((-0.2 - 1) ** 2 + 0.2 ** 2), rel=1e-6)


def test_pix2pix_objective_is_adversarial_plus_weighted_l1_on_input_output_pairs():
    a = torch.tensor([[[[0.2, -0.4], [0.6, 1.0]]]])
    b = torch.tensor([[[[-0.1, 0.3], [0.5, -0.7]]]])
    G = _Affine(0.5, 0.1)
    seen = []

    class Pairs(_ConstD):
        def forward(self, x, y=None):
            seen.append(x.detach().clone())
            return super().forward(x)

    loss = L.Pix2PixLoss(l1_weight=100.0)
    stats = loss.accumulate_gradients("G", G, Pairs(0.4), _Ctx(L.Batch(b, None, torch.zeros(1, 0), None, a)))
    l1 = np.abs(0.5 * a.numpy() + 0.1 - b.numpy()).mean()
    adv = np.log1p(np.exp(-0.4))  # -log sigmoid(0.4)
    assert float(stats["loss/G"]) == pytest.approx(adv + 100 * l1, rel=1e-6)
    assert torch.equal(seen[-1], torch.cat([a, 0.5 * a + 0.1], 1))  # D sees (input, output)
    d = loss.accumulate_gradients("D", G, Pairs(0.4), _Ctx(L.Batch(b, None, torch.zeros(1, 0), None, a)))
    assert float(d["loss/D"]) == pytest.approx(0.5 * (np.log1p(np.exp(-0.4)) + np.log1p(np.exp(0.4))), rel=1e-6)
    assert torch.equal(seen[-2], torch.cat([a, b], 1))  # the real pair


# -- variants: build, train, checkpoint, resume ----------------------------------------------------------
def _narrow(name, **changes):
    spec = {**V.resolve(name).to_dict(), **changes}
    spec["generator"]["width"] = 8
    spec["discriminator"]["width"] = 8
    if name == "cyclegan":
        spec["generator"]["n_blocks"] = 2
    if name == "cyclegan" and "pool_size" in changes:
        spec["loss"]["pool_size"] = changes.pop("pool_size")
    return V.VariantSpec.parse(name, {k: v for k, v in spec.items() if k != "pool_size"})


def _digits(n=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *SHAPE), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("name,info", [("pix2pix", PAIRED), ("cyclegan", UNPAIRED)])
def test_translation_preset_trains_and_its_checkpoint_reproduces_outputs(name, info, tmp_path):
    from gan_models import checkpoint as ck

    torch.manual_seed(0)
    spec = _narrow(name)
    gan = V.build(spec, info)
    assert gan.z_dim == 0 and gan.translation == info.translation
    x, a = _digits(), _digits(seed=1)
    trainer = Trainer(gan, x, batch_size=8, seed=0, source=a)
    before = [p.detach().clone() for p in gan.G.parameters()]
    stats = trainer.train_step(measure=True)
    assert {"loss/D", "loss/G", "D/real", "D/fake", "grad_norm/D", "grad_norm/G"} <= set(stats)
    assert all(np.isfinite(v) for v in stats.values())
    assert any(not torch.equal(p, q) for p, q in zip(before, gan.G.parameters()))
    data = {"kind": "image", "shape": list(SHAPE), "n_classes": 10, "task": info.translation, "source_shape": list(SHAPE)}
    ck.save_checkpoint(tmp_path, trainer.step, {**trainer.state_dict(), "variant": name, "spec": spec.to_dict(), "data": data,
                                               "train": {"steps": trainer.step}})
    entry = ck.read_index(tmp_path)[-1]
    G2, z_dim = V.generator_from_checkpoint(ck.load_checkpoint(tmp_path / entry["file"], entry["sha256"]))
    inputs = a[:4].float() / 127.5 - 1
    out = generate(G2, inputs)
    assert z_dim == 0 and out.shape == (4, *SHAPE) and out.min() >= -1 and out.max() <= 1
    assert torch.equal(out, generate(gan.G, inputs))


def test_translation_variants_are_refused_on_the_wrong_data_naming_the_fix():
    with pytest.raises(ValueError, match="needs a translation data set"):
        V.build(V.resolve("pix2pix"), V.DataInfo("image", SHAPE, 10))
    with pytest.raises(ValueError, match="needs paired data.*use cyclegan"):
        V.build(V.resolve("pix2pix"), UNPAIRED)
    with pytest.raises(ValueError, match="translates images and needs a translation loss"):
        V.resolve("x", {"preset": "dcgan", "generator": {"arch": "unet"}})
    with pytest.raises(ValueError, match="draws from noise"):
        V.resolve("x", {"preset": "pix2pix", "generator": {"arch": "dcgan"}})
    with pytest.raises(ValueError, match="z_dim must be 0"):
        V.resolve("x", {"preset": "pix2pix", "z_dim": 100})


class _Stop(Exception):
    pass


def test_cyclegan_resumes_bit_for_bit_with_its_image_pools_and_decaying_learning_rate():
    spec = _narrow("cyclegan", lr_decay=0.5, pool_size=4)

    def fresh():
        torch.manual_seed(0)
        return Trainer(V.build(spec, UNPAIRED), _digits(), batch_size=4, seed=0, source=_digits(seed=1))

    straight = fresh()
    straight.run(6, progress=False)
    lrs = [g["lr"] for g in straight.opt_g.param_groups]
    assert lrs == [pytest.approx(2e-4 * 1 / 3)]  # step 5 of 6, decaying over the last 3: 2e-4 * (6-5)/3

    interrupted = fresh()
    saved = {}

    def save_and_stop(step, state):
        buf = io.BytesIO()
        torch.save(state, buf)
        saved["state"] = buf.getvalue()
        raise _Stop

    with pytest.raises(_Stop):
        interrupted.run(6, checkpoint_every=3, on_checkpoint=save_and_stop, progress=False)
    state = torch.load(io.BytesIO(saved["state"]), weights_only=True)
    assert state["loss"]["pool_b/images"].shape == (4, *SHAPE)  # the pool is in the checkpoint
    torch.manual_seed(123)  # the resumed process starts elsewhere
    resumed = fresh()
    resumed.load_state_dict(state)
    resumed.run(6, progress=False)
    for (k, p), q in zip(straight.G.state_dict().items(), resumed.G.state_dict().values()):
        assert torch.equal(p, q), k
    assert torch.equal(straight.loss.pool_a.images, resumed.loss.pool_a.images)


# -- stages ---------------------------------------------------------------------------------------------
def _params(project, dataset, variants, **prepare):
    from tasks.config import load_params

    doc = {**TINY, "prepare": {"dataset": dataset, "classifier_samples": 1000, "max_samples": 300, **prepare},
           "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "log_every": 2, "parallel": 1,
                     "variants": variants},
           "select": {"n_samples": 20}, "evaluate": {"n_samples": 20, "metrics": ["kid"]}}
    write_params(project / "params.yaml", doc)
    return load_params(project / "params.yaml")


NARROW = {"pix2pix": {"generator": {"width": 8}, "discriminator": {"width": 8}},
          "cyclegan": {"generator": {"width": 8, "n_blocks": 1}, "discriminator": {"width": 8}}}


def test_thin2thick_stages_score_translations_against_the_ground_truth(project):
    from gan_models import metrics as M
    from gan_models.checkpoint import load_checkpoint
    from gan_models.variants import generator_from_checkpoint
    from tasks.layout import Layout, load_prepared
    from tasks.evaluate import evaluate
    from tasks.export import export
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    params = _params(project, "thin2thick", {"cyclegan": NARROW["cyclegan"]})
    prepare(params)
    prep = load_prepared(Layout())
    t = prep.manifest["translation"]
    assert t["task"] == "unpaired" and t["ground_truth"] and t["counts"] == {"train_source": 135, "train_target": 135,
                                                                             "heldout": 30}
    ident = t["baselines"]["identity"]
    assert ident["l1"] == pytest.approx(np.abs(prep.held_a / 255.0 - prep.held_x / 255.0).mean(), rel=1e-9)
    assert ident["ssim"] == pytest.approx(M.ssim(prep.held_a, prep.held_x), rel=1e-9)
    train(params, "cyclegan", progress=False)
    sel = select(params, "cyclegan")
    assert json.loads((Layout().selected_dir("cyclegan") / "selection.json").read_text())["metric"] == "l1"
    m = evaluate(params, "cyclegan")
    assert m["task"] == "unpaired" and m["n_samples"] == 30 and m["step"] == sel["best_step"]
    # an independent recomputation of the headline numbers from the selected checkpoint
    G, _ = generator_from_checkpoint(load_checkpoint(Layout().best_checkpoint("cyclegan")))
    out = (generate(G, torch.from_numpy(prep.held_a).float() / 127.5 - 1).double().clamp(-1, 1).numpy() + 1) / 2
    truth = prep.held_x / 255.0
    assert m["l1"] == pytest.approx(np.abs(out - truth).mean(), rel=1e-6)
    assert m["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / ((out - truth) ** 2).mean((1, 2, 3)))), rel=1e-6)
    back = (generate(G.ba, torch.from_numpy(prep.held_x).float() / 127.5 - 1).double().clamp(-1, 1).numpy() + 1) / 2
    assert m["l1_ba"] == pytest.approx(np.abs(back - prep.held_a / 255.0).mean(), rel=1e-6)
    assert {"fid", "kid_mean", "label_preservation", "cycle_l1_aba", "cycle_l1_bab", "ssim", "identity_l1",
            "blur_ssim", "identity_label_preservation"} <= set(m)
    assert m["identity_l1"] == pytest.approx(ident["l1"])
    e = export(params, "cyclegan")
    out_dir = Layout().samples_dir("cyclegan")
    for f in ("translation.png", "translation_ba.png", "grid.png", "samples.npz"):
        assert f in e["files"] and (out_dir / f).exists()
    arrays = np.load(out_dir / "samples.npz", allow_pickle=False)
    np.testing.assert_array_equal(arrays["truth"], prep.held_x[:len(arrays["truth"])])
    with Image.open(out_dir / "translation.png") as im:  # 4 groups of 3 rows (input, output, truth), 8 wide
        assert im.size == (2 * (2 + 8 * 30), 2 * (2 + 12 * 30))  # 28 px tiles, 2 px borders, shown 2x


def test_translation_prepare_refuses_a_changed_input_domain(project):
    from gan_models.data import load_arrays, save_arrays
    from tasks.layout import Layout, load_prepared
    from tasks.prepare import prepare

    prepare(_params(project, "edges2digits", {"pix2pix": NARROW["pix2pix"]}))
    f = Layout().prepared / "train.npz"
    arrays = load_arrays(f)
    arrays["a"][0, 0, 0, 0] ^= 1
    save_arrays(f, **arrays)
    # the manifest's output hash catches it first; the content hash covers the source too
    with pytest.raises(D.DataError, match="corrupt or was changed"):
        load_prepared(Layout())


def _png(path: Path, size=(16, 16), value=128):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


@pytest.mark.parametrize("layout,dataset,match", [
    ({"A/1.png": (16, 16), "A/2.png": (16, 16), "B/1.png": (16, 16)}, "paired_folder", r"A/2.png has no partner .*B/2.png"),
    ({"A/1.png": (16, 16), "B/1.png": (20, 20)}, "paired_folder", r"A/1.png is 16x16 but its partner .*B/1.png is 20x20"),
    ({"A/1.png": (16, 16)}, "paired_folder", r"B is missing"),
    ({"trainA/1.png": (16, 16), "trainB/.keep": None}, "unpaired_folder", r"trainB holds no images"),
    ({"trainA/1.png": (16, 16), "trainB/1.png": (16, 16), "testA/1.png": (16, 16)}, "unpaired_folder",
     r"testA exists but .*testB does not"),
])
def test_bad_translation_folders_are_refused_before_any_work(tmp_path, layout, dataset, match):
    root = tmp_path / "data"
    for rel, size in layout.items():
        if size is None:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_text("")
        else:
            _png(root / rel, size)
    proj = tmp_path / "proj"
    proj.mkdir()
    write_params(proj / "params.yaml", {**TINY, "prepare": {"dataset": dataset, "root": str(root)},
                                        "train": {**TINY["train"], "variants": {"cyclegan": {}}}})
    proc = cli("prepare", cwd=proj)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    import re

    assert re.search(match, proc.stderr), proc.stderr
    assert not (proj / "data").exists()  # nothing written


def test_user_translation_folders_prepare_with_their_own_split(project, tmp_path):
    from tasks.layout import Layout, load_prepared
    from tasks.prepare import prepare

    root = tmp_path / "pairs"
    rng = np.random.default_rng(0)
    for i in range(30):
        Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(_mk(root / "A" / f"{i}.png"))
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(_mk(root / "B" / f"{i}.png"))
    params = _params(project, "paired_folder", {"pix2pix": NARROW["pix2pix"]}, root=str(root), max_samples=None)
    prepare(params)
    prep = load_prepared(Layout())
    t = prep.manifest["translation"]
    assert t["source_shape"] == [1, 16, 16] and t["target_shape"] == [3, 16, 16] and t["ground_truth"]
    # partners stay together: each held-out input's target is the file of the same name
    name_of = {np.asarray(Image.open(root / "A" / f"{i}.png")).tobytes(): i for i in range(30)}
    for a, b in zip(prep.held_a, prep.held_x):
        i = name_of[a[0].tobytes()]
        np.testing.assert_array_equal(b, np.asarray(Image.open(root / "B" / f"{i}.png")).transpose(2, 0, 1))

    uroot = tmp_path / "unpaired"
    for dom, n in (("trainA", 12), ("trainB", 10), ("testA", 3), ("testB", 4)):
        for i in range(n):
            Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(_mk(uroot / dom / f"{i}.png"))
    params = _params(project, "unpaired_folder", {"cyclegan": NARROW["cyclegan"]}, root=str(uroot),
                     max_samples=None)
    prepare(params)
    prep = load_prepared(Layout())
    assert prep.manifest["translation"]["counts"] == {"train_source": 12, "train_target": 10, "heldout": 3}
    assert not prep.manifest["translation"]["ground_truth"] and len(prep.held_x) == 4


def _mk(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# -- end to end ------------------------------------------------------------------------------------------
@pytest.mark.slow
def test_both_translation_presets_run_through_the_flow_with_mlflow_and_dvc(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    variants = {**NARROW, "mlp": {"generator": {"hidden": [16]}, "discriminator": {"hidden": [16]}, "z_dim": 8}}
    params = {**TINY, "prepare": {"dataset": "edges2digits", "classifier_samples": 1000, "max_samples": 300},
              "train": {**TINY["train"], "steps": 4, "checkpoint_every": 2, "log_every": 2, "parallel": 1,
                        "variants": variants},
              "select": {"n_samples": 30}, "evaluate": {"n_samples": 60}}
    proj = copy_project(tmp_path / "proj", params)
    uri = f"sqlite:///{isolated_stores / 'translation.db'}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "DVC: recorded in dvc.lock" in proc.stdout
    for v in ("pix2pix", "cyclegan"):
        m = json.loads((proj / "metrics" / f"{v}.json").read_text())
        assert m["task"] == "paired" and m["n_samples"] == 30  # every held-out input of 300 samples
        assert (proj / "samples" / v / "translation.png").exists()
    assert (proj / "samples" / "cyclegan" / "translation_ba.png").exists()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    runs = {r.data.tags["variant"]: r for r in client.search_runs([exp.experiment_id])
            if "mlflow.parentRunId" in r.data.tags}
    assert runs["pix2pix"].data.tags["task"] == "paired" and "task" not in runs["mlp"].data.tags
    for v in ("pix2pix", "cyclegan"):
        assert {"l1", "psnr", "ssim", "label_preservation", "select/l1", "loss/G", "D/real"} <= set(runs[v].data.metrics)
    assert "loss/G_cycle" in runs["cyclegan"].data.metrics and "loss/G_L1" in runs["pix2pix"].data.metrics
    # the registry takes generators from noise only: the champion is the MLP
    assert client.get_model_version_by_alias("gan-generator", "champion").tags["variant"] == "mlp"
    # compare ranks the two kinds apart: generation first, then translation by L1
    proc = cli("compare", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line.split() for line in proc.stdout.splitlines() if line[:1].isdigit()]
    l1 = {v: json.loads((proj / "metrics" / f"{v}.json").read_text())["l1"] for v in ("pix2pix", "cyclegan")}
    assert [r[:3] for r in rows] == [["1", "mlp", "generation"],
                                     *[[str(i), v, "translation"] for i, v in enumerate(sorted(l1, key=l1.get), 1)]]
    repro = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=proj, capture_output=True, text=True,
                           timeout=600, env={**os.environ, "PATH": venv_path()})
    assert repro.returncode == 0 and "Running stage" not in repro.stdout, repro.stdout + repro.stderr
