"""The tricks and special layers against closed forms and brute-force references."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gan_models import losses as L
from gan_models import networks as N
from gan_models import variants as V
from gan_models.training import Trainer


def test_minibatch_discrimination_matches_brute_force():
    torch.manual_seed(0)
    layer = N.MinibatchDiscrimination(5, out_features=3, kernel_dims=4)
    f = torch.randn(6, 5)
    out = layer(f)
    m = (f @ layer.T).view(6, 3, 4)
    expected = torch.zeros(6, 3)
    for i in range(6):
        for j in range(6):
            if i != j:
                expected[i] += torch.exp(-(m[i] - m[j]).abs().sum(1))
    torch.testing.assert_close(out[:, :5], f)
    torch.testing.assert_close(out[:, 5:], expected, rtol=1e-5, atol=1e-6)


def test_packed_discriminator_sees_m_samples_side_by_side():
    torch.manual_seed(0)
    inner = N.MLPDiscriminator((4,), hidden=[8])
    D = N.Packed(inner, 2)
    x = torch.randn(6, 2)
    manual = inner(torch.cat([x[0::2], x[1::2]], 1))  # pack i = samples 2i and 2i+1
    torch.testing.assert_close(D(x), manual)
    with pytest.raises(ValueError, match="multiple of 2"):
        D(torch.randn(5, 2))


def test_pacgan_minibatch_counts_packs_as_in_the_paper():
    """Lin et al.'s minibatch of 100 is 100 packs of m samples: the trainer draws batch_size * m
    real samples and as many noise vectors, and D returns batch_size logits."""
    from gan_models import variants as V
    from gan_models.training import Trainer

    for m in (1, 3):
        spec = V.resolve("pacgan", {"z_dim": 4, "generator": {"hidden": [8]}, "discriminator": {"hidden": [8]},
                                         "tricks": {"pack": m}})
        gan = V.build(spec, V.DataInfo("points", (2,), 0))
        tr = Trainer(gan, torch.randn(50, 2), batch_size=8, seed=0)
        b = tr.batch()
        assert b.real.shape == (8 * m, 2) and b.z.shape == (8 * m, 4)
        assert gan.D(gan.G(b.z)).shape == (8,)
        stats = tr.train_step(measure=True)
        assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())


@pytest.mark.parametrize("p,stage,alpha", [(0.0, 0, 1.0), (0.19, 0, 1.0), (0.2, 1, 0.0), (0.3, 1, 0.5),
                                           (0.5, 1, 1.0), (0.7, 2, 0.5), (1.0, 2, 1.0)])
def test_progressive_schedule(p, stage, alpha):
    s, a = N.progressive_schedule(p, 2)  # 5 phases: stable, fade 1, stable 1, fade 2, stable 2
    assert s == stage and a == pytest.approx(alpha, abs=1e-9)


def test_progressive_fade_in_at_alpha_0_and_1():
    torch.manual_seed(0)
    G = N.ProGANGenerator(8, (1, 16, 16), width=4, out_activation="identity")  # base 4, n = 2
    z = torch.randn(3, 8)
    G.set_progress(0.2 + 1e-9)  # start of fading in stage 1: alpha = 0
    faded_out = G(z)
    G.set_progress(0.1)  # stage 0, stable
    prev = G(z)
    torch.testing.assert_close(faded_out, prev, rtol=1e-5, atol=1e-6)  # both: 4x4 output upsampled
    G.set_progress(0.4999)
    G2 = G(z)  # stage 1, alpha ~ 1: its own 8x8 output
    h = G.first_conv(G.first(z).view(3, G.chs[0], 4, 4))
    own = F.interpolate(G.to_rgb[1](G.blocks[0](h)), size=(16, 16))
    torch.testing.assert_close(G2, own, rtol=1e-3, atol=1e-3)
    G.set_progress(1.0)
    assert G(z).shape == (3, 1, 16, 16)
    D = N.ProGANDiscriminator((1, 16, 16), width=4)
    for p in (0.0, 0.3, 1.0):
        D.set_progress(p)
        assert D(G(z)).shape == (3,)


def test_self_attention_starts_as_identity():
    sa = N.SelfAttention(16)
    x = torch.randn(2, 16, 5, 5)
    torch.testing.assert_close(sa(x), x)
    with torch.no_grad():
        sa.gamma.fill_(1.0)
    assert not torch.allclose(sa(x), x)


def test_diff_augment_keeps_shapes_and_is_identity_without_policy():
    x = torch.rand(4, 3, 8, 8) * 2 - 1
    assert torch.equal(L.diff_augment(x, ""), x)
    torch.manual_seed(0)
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        assert L.diff_augment(x, policy).shape == x.shape
    ones = torch.ones(64, 1, 8, 8)
    cut = L.diff_augment(ones, "cutout")
    zero_share = (cut == 0).float().mean().item()
    assert 0.1 <= zero_share <= 0.25  # a 4x4 square of 8x8 = 25%, less where it crosses the border
    with pytest.raises(ValueError, match="unknown policy 'blur'"):
        L.Tricks(augment="blur")


class _Ctx:
    def __init__(self, real, z):
        self.real, self.z = real, z

    def batch(self):
        return L.Batch(self.real, None, self.z, None)


def _mlp_gan(tricks):
    torch.manual_seed(0)
    spec = V.resolve("x", {"preset": "mlp", "z_dim": 3, "generator": {"hidden": [8]},
                                "discriminator": {"hidden": [8]}, "tricks": tricks})
    return V.build(spec, V.DataInfo("points", (2,), 0))


def _g_grads(gan, ctx):
    gan.G.zero_grad()
    gan.D.requires_grad_(False)
    gan.loss.accumulate_gradients("G", gan.G, gan.D, ctx)
    return torch.cat([p.grad.flatten() for p in gan.G.parameters()])


def test_unrolled_gradient_tends_to_the_plain_one_as_the_step_size_vanishes():
    real, z = torch.randn(16, 2), torch.randn(16, 3)
    plain = _g_grads(_mlp_gan({}), _Ctx(real, z))
    tiny = _g_grads(_mlp_gan({"unrolled_steps": 3, "unrolled_lr": 1e-7}), _Ctx(real, z))
    big = _g_grads(_mlp_gan({"unrolled_steps": 3, "unrolled_lr": 0.5}), _Ctx(real, z))
    torch.testing.assert_close(tiny, plain, rtol=1e-4, atol=1e-6)
    assert (big - plain).norm() > 1e-3 * plain.norm()  # unrolling changes G's gradient


def test_feature_matching_loss_closed_form():
    gan = _mlp_gan({"feature_matching": True})
    real, z = torch.randn(16, 2), torch.randn(16, 3)
    gan.D.requires_grad_(False)
    stats = gan.loss.accumulate_gradients("G", gan.G, gan.D, _Ctx(real, z))
    fr = gan.D.forward_all(real)["features"].mean(0)
    ff = gan.D.forward_all(gan.G(z))["features"].mean(0)
    assert stats["loss/G"].item() == pytest.approx((fr - ff).pow(2).sum().item(), rel=1e-5)


def test_ema_of_generator_weights():
    spec = V.resolve("x", {"preset": "mlp", "ema": 0.9, "z_dim": 3, "generator": {"hidden": [8]},
                                "discriminator": {"hidden": [8]}})
    torch.manual_seed(0)
    gan = V.build(spec, V.DataInfo("points", (2,), 0))
    tr = Trainer(gan, torch.randn(32, 2), batch_size=8, seed=0)
    before = [p.detach().clone() for p in gan.G.parameters()]
    tr.train_step()
    for e, b, p in zip(tr.G_ema.parameters(), before, gan.G.parameters()):
        torch.testing.assert_close(e, 0.9 * b + 0.1 * p.detach())


def _log_softmax_ce(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean cross-entropy by hand (numpy, log-sum-exp), independent of torch's F.cross_entropy."""
    import numpy as np

    z = logits.detach().double().numpy()
    lse = z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1))
    return float((lse - z[np.arange(len(z)), labels.numpy()]).mean())


def _labelled_patterns(n: int = 80):
    """8x8 images whose class k (of 10) is a bright 2x2 square at block k, on dim noise: labels
    that a classifier can learn."""
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 10
    x = torch.randint(0, 60, (n, 1, 8, 8), generator=g, dtype=torch.uint8)
    for i, k in enumerate(labels.tolist()):
        r, c = divmod(k, 4)
        x[i, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = 255
    return x, labels


@pytest.fixture
def one_thread():
    """Tiny networks train about twice as fast on one torch thread here; restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_acgan_trains_its_auxiliary_head_and_conditioning_needs_labels(one_thread):
    spec = V.resolve("acgan", {"generator": {"width": 8}, "discriminator": {"width": 8}})
    with pytest.raises(ValueError, match="needs labelled data"):
        V.build(spec, V.DataInfo("image", (1, 8, 8), 0))
    torch.manual_seed(0)
    gan = V.build(spec, V.DataInfo("image", (1, 8, 8), 10))
    # The auxiliary losses on one hand-built batch equal the cross-entropies computed here.
    real, z = torch.rand(6, 1, 8, 8) * 2 - 1, torch.randn(6, gan.z_dim)
    real_y, fake_y = torch.tensor([0, 1, 2, 3, 4, 5]), torch.tensor([9, 8, 7, 0, 1, 2])
    ctx = type("Ctx", (), {"batch": lambda self: L.Batch(real, real_y, z, fake_y)})()
    gan.G.train(), gan.D.train()
    d_stats = gan.loss.accumulate_gradients("D", gan.G, gan.D, ctx)
    with torch.no_grad():  # no optimizer step was taken: the same networks, BatchNorm on batch statistics
        fake = gan.G(z, fake_y)
        expected_d = (_log_softmax_ce(gan.D.forward_all(real, real_y)["aux"], real_y)
                      + _log_softmax_ce(gan.D.forward_all(fake, fake_y)["aux"], fake_y))
        expected_g = _log_softmax_ce(gan.D.forward_all(fake, fake_y)["aux"], fake_y)
    assert d_stats["loss/D_aux"].item() == pytest.approx(expected_d, rel=1e-5)
    g_stats = gan.loss.accumulate_gradients("G", gan.G, gan.D, ctx)
    assert g_stats["loss/G_aux"].item() == pytest.approx(expected_g, rel=1e-5)

    # Trained on images with informative labels, D's auxiliary head learns them: its cross-entropy
    # on the real data falls from chance (log 10) within 20 steps; with aux_weight 0 the head's
    # weights never change and it stays at chance.
    x, labels = _labelled_patterns()

    def real_aux_ce(D):
        with torch.no_grad():
            return F.cross_entropy(D.forward_all(x.float() / 127.5 - 1, labels)["aux"], labels).item()

    for weight in (1.0, 0.0):
        spec = V.resolve("acgan", {"generator": {"width": 8}, "discriminator": {"width": 8}, "z_dim": 8,
                                        "lr_d": 5e-3, "tricks": {"aux_weight": weight}})
        torch.manual_seed(0)
        gan = V.build(spec, V.DataInfo("image", (1, 8, 8), 10))
        head = {k: v.clone() for k, v in gan.D.heads.aux.state_dict().items()}
        before = real_aux_ce(gan.D)
        assert before == pytest.approx(math.log(10), abs=0.05)
        tr = Trainer(gan, x, batch_size=16, seed=0, conditions=labels)
        for _ in range(20):
            tr.train_step(measure=False)
        after = real_aux_ce(gan.D)
        if weight:
            assert after < before - 0.5, (before, after)  # measured: 2.30 -> 1.33
        else:
            assert all(torch.equal(v, gan.D.heads.aux.state_dict()[k]) for k, v in head.items())
            assert after == pytest.approx(before, abs=0.1)


def test_perceptual_term_matches_closed_form_and_reaches_g():
    torch.manual_seed(0)
    spec = V.resolve("x", {"preset": "dcgan", "z_dim": 4, "generator": {"width": 4},
                                "discriminator": {"width": 4}, "tricks": {"perceptual_weight": 2.0}})
    gan = V.build(spec, V.DataInfo("image", (1, 8, 8), 0))
    phi = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 5)).requires_grad_(False)
    gan.loss.perceptual_net = phi
    real, z = torch.rand(6, 1, 8, 8) * 2 - 1, torch.randn(6, 4)
    gan.D.requires_grad_(False)
    gan.G.train()
    stats = gan.loss.accumulate_gradients("G", gan.G, gan.D, _Ctx(real, z))
    # The term on the same fakes (BatchNorm in train mode: same batch -> same output)
    expected = (phi(real).mean(0) - phi(gan.G(z)).mean(0)).pow(2).sum()
    assert stats["loss/G_perceptual"].item() == pytest.approx(expected.item(), rel=1e-5)
    gan.loss.perceptual_net = None
    with pytest.raises(ValueError, match="needs a feature network"):
        gan.loss.accumulate_gradients("G", gan.G, gan.D, _Ctx(real, z))


def test_maxout_layer_is_the_max_over_pieces():
    """Each unit's output is the largest of its pieces' affine maps (brute force per unit)."""
    from gan_models.networks.mlp import Maxout

    torch.manual_seed(0)
    layer = Maxout(3, 4, pieces=5)
    x = torch.randn(6, 3)
    W, b = layer.linear.weight.detach().view(4, 5, 3), layer.linear.bias.detach().view(4, 5)
    expected = torch.tensor([[max(float(W[u, k] @ x[i] + b[u, k]) for k in range(5)) for u in range(4)]
                             for i in range(6)])
    torch.testing.assert_close(layer(x), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="at least 2 pieces"):
        Maxout(3, 4, pieces=1)


# -- time to quality: EMA ramp-up, the EMA's BatchNorm statistics, R1 ----------------------------------
def test_ema_rampup_follows_the_half_life_formula_and_reaches_the_configured_decay():
    spec = V.resolve("x", {"preset": "mlp", "ema": 0.999, "ema_rampup": 0.05, "z_dim": 3,
                                "generator": {"hidden": [8]}, "discriminator": {"hidden": [8]}})
    gan = V.build(spec, V.DataInfo("points", (2,), 0))
    tr = Trainer(gan, torch.randn(32, 2), batch_size=8, seed=0)
    cap = math.log(0.5) / math.log(0.999)  # 692.8 steps: the half-life of the fixed decay
    for step in (0, 9, 99, 999, 13_856, 20_000):
        tr.step = step
        half = min(cap, 0.05 * (step + 1))
        assert tr.ema_beta() == pytest.approx(2 ** (-1 / half), rel=1e-12)
    tr.step = 20_000
    assert tr.ema_beta() == pytest.approx(0.999, rel=1e-12)  # ramped up
    tr.step = 0
    assert tr.ema_beta() < 1e-5  # the first update all but copies G
    with pytest.raises(ValueError, match="ema_rampup .*needs ema > 0"):
        V.resolve("x", {"preset": "mlp", "ema_rampup": 0.05})


def test_ema_batchnorm_statistics_are_recomputed_for_the_ema_weights():
    """After recalibration the EMA generator's first BatchNorm holds the mean and (unbiased)
    variance of its own pre-normalisation activations over the fixed noise, computed here by hand
    from the EMA weights; G's own statistics (and the global RNG) are untouched."""
    spec = V.resolve("x", {"preset": "dcgan", "ema": 0.9, "z_dim": 4,
                                "generator": {"width": 4}, "discriminator": {"width": 4}})
    torch.manual_seed(0)
    gan = V.build(spec, V.DataInfo("image", (1, 28, 28), 0))
    tr = Trainer(gan, torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8), batch_size=8, seed=0)
    for _ in range(3):
        tr.train_step()
    g_stats = [b.clone() for b in gan.G.buffers()]
    rng = torch.get_rng_state()
    tr.recalibrate_ema_batchnorm(n=64, batch_size=32)
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(a, b) for a, b in zip(g_stats, gan.G.buffers()))
    z = torch.randn(64, 4, generator=torch.Generator().manual_seed(20231))
    first_conv, bn = tr.G_ema.net[0], tr.G_ema.net[1]
    with torch.no_grad():
        h = first_conv(z.view(64, 4, 1, 1)).double()  # (64, C, 7, 7) before the first BatchNorm
    per_channel = h.transpose(0, 1).flatten(1)
    torch.testing.assert_close(bn.running_mean.double(), per_channel.mean(1), rtol=1e-5, atol=1e-6)
    # cumulative average over two batches of 32 of the per-batch unbiased variances
    halves = [h[:32], h[32:]]
    var = torch.stack([x.transpose(0, 1).flatten(1).var(1, unbiased=True) for x in halves]).mean(0)
    torch.testing.assert_close(bn.running_var.double(), var, rtol=1e-4, atol=1e-6)
    assert not torch.allclose(bn.running_mean, gan.G.net[1].running_mean)  # not G's statistics


class _LinearD(torch.nn.Module):
    """D(x) = <w, x> + b: its input gradient is w for every x, so R1 = ||w||^2."""

    def __init__(self, dim):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-1, 1, dim))
        self.b = torch.nn.Parameter(torch.tensor(0.3))

    def forward_all(self, x, y=None):
        return {"logits": x.flatten(1) @ self.w + self.b, "features": x.flatten(1), "aux": None}


class _AffineG(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 6)

    def forward(self, z, y=None):
        return self.lin(z)


class _StepCtx(_Ctx):
    def __init__(self, real, z, step):
        super().__init__(real, z)
        self.step = step


@pytest.mark.parametrize("every,step,applied", [(1, 5, True), (4, 7, True), (4, 8, False)])
def test_r1_penalty_equals_its_closed_form_on_a_linear_discriminator(every, step, applied):
    gamma = 0.4
    loss = L.BCELoss()
    loss.tricks = L.Tricks(r1=gamma, r1_every=every)
    D = _LinearD(6)
    G = _AffineG()
    real, z = torch.randn(8, 6), torch.randn(8, 3)
    stats = loss.accumulate_gradients("D", G, D, _StepCtx(real, z, step))
    w = D.w.detach()
    if not applied:
        assert "loss/D_r1" not in stats
        return
    assert float(stats["loss/D_r1"]) == pytest.approx(float(w.pow(2).sum()), rel=1e-6)
    # the gradient the penalty adds to w is gamma * every * w (d/dw of gamma/2 * every * ||w||^2)
    D.zero_grad()
    plain = L.BCELoss()
    plain.accumulate_gradients("D", G, D, _StepCtx(real, z, step))
    base = D.w.grad.clone()
    D.zero_grad()
    loss.accumulate_gradients("D", G, D, _StepCtx(real, z, step))
    torch.testing.assert_close(D.w.grad - base, gamma * every * w, rtol=1e-5, atol=1e-6)


# -- the multi-scale discriminator ------------------------------------------------------------------
class _ConstScaleD(N.Discriminator):
    """A fixed logit per sample, different for each scale; remembers the input size it saw."""

    def __init__(self, shape, value):
        super().__init__()
        self.shape, self.value = tuple(shape), value
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward_all(self, x, y=None):
        assert tuple(x.shape[1:]) == self.shape
        logits = torch.full((x.shape[0],), self.value) + self.w + 0 * x.mean()
        return {"logits": logits, "features": x.flatten(1)[:, :3], "aux": None}


def test_multiscale_discriminator_sees_each_scale_and_its_loss_is_the_mean_of_the_per_scale_losses():
    values = iter([0.7, -0.4, 1.9])
    D = N.MultiScale(lambda shape: _ConstScaleD(shape, next(values)), (1, 28, 28), 3)
    assert D.shapes == [(1, 28, 28), (1, 14, 14), (1, 7, 7)]
    x = torch.randn(5, 1, 28, 28)
    out = D.forward_all(x)
    assert out["logits"].shape == (5, 3) and out["features"].shape == (5, 9)
    # the half scale is the 3x3 average (padding not counted) at stride 2
    half = F.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    torch.testing.assert_close(half[:, 0, 0, 0], (x[:, 0, :2, :2].sum((1, 2)) / 4))
    fake = D.forward_all(torch.randn(5, 1, 28, 28))["logits"]
    for loss in (L.BCELoss(), L.HingeLoss(), L.LSGANLoss(), L.WassersteinLoss()):
        per_scale = [loss.d_objective(out["logits"][:, k], fake[:, k]) for k in range(3)]
        combined = loss.d_objective(out["logits"], fake).detach()
        assert float(combined) == pytest.approx(float(sum(per_scale).detach() / 3), rel=1e-6)
        per_g = [loss.g_objective(fake[:, k]) for k in range(3)]
        assert float(loss.g_objective(fake).detach()) == pytest.approx(float(sum(per_g).detach() / 3), rel=1e-6)


def test_multiscale_option_builds_separate_networks_for_any_image_preset_and_trains():
    torch.manual_seed(0)
    spec = V.resolve("x", {"preset": "dcgan", "z_dim": 8, "generator": {"width": 4},
                                "discriminator": {"width": 4, "scales": 2}})
    gan = V.build(spec, V.DataInfo("image", (1, 28, 28), 0))
    assert isinstance(gan.D, N.MultiScale) and len(gan.D.nets) == 2
    assert gan.D.nets[0] is not gan.D.nets[1] and gan.D.shapes[1] == (1, 14, 14)
    tr = Trainer(gan, torch.randint(0, 256, (32, 1, 28, 28), dtype=torch.uint8), batch_size=8, seed=0)
    stats = tr.train_step(measure=True)
    assert all(math.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="cannot take the 7x7 scale.*lower discriminator.scales"):
        V.build(V.VariantSpec.parse("x", {**spec.to_dict(), "discriminator": {"arch": "dcgan", "width": 4, "scales": 3}}),
                V.DataInfo("image", (1, 28, 28), 0))
    cgan = V.build(V.resolve("c", {"preset": "cgan", "z_dim": 8, "generator": {"width": 4},
                                            "discriminator": {"width": 4, "scales": 2}}),
                   V.DataInfo("image", (1, 28, 28), 10))
    y = torch.arange(4) % 10
    assert cgan.D.forward_all(torch.randn(4, 1, 28, 28), y)["logits"].shape == (4, 2)
