"""The compact StyleGAN2: modulated convolution against its formula, truncation, style mixing,
minibatch standard deviation, sizes, EMA of the tracked average w."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from gan_models.networks import stylegan as S
from gan_models import variants as V
from gan_models.data import DataInfo


def small_g(size=28, channels=1, n_classes=0, **kw):
    return S.StyleGenerator(16, (channels, size, size), n_classes=n_classes, width=4, max_width=8, w_dim=16, **kw)


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_equals_the_per_sample_formula(demodulate):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 5, 6, 6, generator=g)
    w = torch.randn(4, 5, 3, 3, generator=g)
    s = torch.rand(3, 5, generator=g) * 2 + 0.1
    out = S.modulated_conv2d(x, w, s, demodulate=demodulate, padding=1)
    for b in range(3):  # the paper's formula, one sample at a time, in float64
        wb = w.double() * s[b].double()[None, :, None, None]
        if demodulate:
            wb = wb / torch.sqrt((wb ** 2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        ref = F.conv2d(x[b:b + 1].double(), wb, padding=1)
        np.testing.assert_allclose(out[b:b + 1].double().numpy(), ref.numpy(), rtol=1e-4, atol=1e-5)


def test_demodulation_gives_unit_output_variance_for_unit_input():
    # the point of demodulation: with i.i.d. unit-variance input, every output channel has unit variance
    g = torch.Generator().manual_seed(1)
    x = torch.randn(4, 64, 32, 32, generator=g)
    w = torch.randn(8, 64, 3, 3, generator=g)
    s = torch.rand(4, 64, generator=g) * 3
    out = S.modulated_conv2d(x, w, s, padding=0)
    var = out.var(dim=(2, 3))
    assert var.min() > 0.85 and var.max() < 1.15, var


def test_psi_zero_gives_the_image_of_the_average_w_for_every_z():
    G = small_g().eval()
    with torch.no_grad():
        G.w_avg.copy_(torch.randn(16, generator=torch.Generator().manual_seed(2)))
        G.truncation_psi = 0.0
        out = G(torch.randn(5, 16))
        ref = G.synthesis(G.w_avg[None, None].expand(1, G.num_ws, -1))
    assert out.std(0).max() < 1e-6  # every z: the same image
    np.testing.assert_allclose(out[0].numpy(), ref[0].numpy(), rtol=1e-5, atol=1e-5)  # float32 rounding
    G.truncation_psi = 1.0
    assert G(torch.randn(5, 16)).std(0).max() > 1e-3  # and without truncation they differ


def test_truncation_moves_w_linearly_towards_the_average():
    G = small_g().eval()
    G.w_avg.copy_(torch.randn(16))
    z = torch.randn(3, 16)
    w = G.mapping(z)
    for psi in (0.3, 0.7):
        np.testing.assert_allclose(G.mapping_ws(z, psi=psi)[:, 0].detach().numpy(),
                                   (G.w_avg + psi * (w - G.w_avg)).detach().numpy(), rtol=1e-5, atol=1e-6)


def _consumers_read(G, ws):
    """Which ws row each style consumer (convolutions, then to-image layers) received."""
    seen = []
    hooks = [m.affine.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].detach().clone()))
             for m in list(G.convs)]
    G.synthesis(ws)
    for h in hooks:
        h.remove()
    seen_rgb = []
    hooks = [m.affine.register_forward_hook(lambda mod, inp, out: seen_rgb.append(inp[0].detach().clone()))
             for m in G.to_images]
    G.synthesis(ws)
    for h in hooks:
        h.remove()
    return seen, seen_rgb


def test_style_rows_follow_stylegan2s_order():
    G = small_g(size=32).eval()
    assert G.num_ws == 8 and G.rgb_rows == [1, 3, 5, 7]  # StyleGAN2 at 32 px: 2 log2(32) - 2 rows
    ws = torch.randn(2, G.num_ws, 16)
    convs, rgbs = _consumers_read(G, ws)
    for i, got in enumerate(convs):
        assert torch.equal(got, ws[:, i]), i
    for r, got in enumerate(rgbs):
        assert torch.equal(got, ws[:, G.rgb_rows[r]]), r


def test_style_mixing_takes_rows_before_the_cutoff_from_z_and_the_rest_from_a_second_z():
    G = small_g(size=32, mixing_prob=1.0).train()
    captured = []
    real_synthesis = G.synthesis
    G.synthesis = lambda ws: captured.append(ws.detach().clone()) or real_synthesis(ws)
    z = torch.randn(4, 16)
    torch.manual_seed(5)
    G(z)
    torch.manual_seed(5)  # the same draws, by hand: the mixing coin, the cutoff, the second z
    assert torch.rand(()) < 1.0
    k = int(torch.randint(1, G.num_ws, ()))
    z2 = torch.randn_like(z)
    ws = captured[0]
    w1, w2 = G.mapping(z).detach(), G.mapping(z2).detach()
    for row in range(G.num_ws):
        np.testing.assert_allclose(ws[:, row].numpy(), (w1 if row < k else w2).numpy(), rtol=1e-6, atol=1e-6)
    assert 1 <= k < G.num_ws


def test_no_mixing_when_its_probability_is_zero_and_w_avg_tracks_the_mean_w():
    G = small_g(mixing_prob=0.0).train()
    captured = []
    real_synthesis = G.synthesis
    G.synthesis = lambda ws: captured.append(ws.detach().clone()) or real_synthesis(ws)
    z = torch.randn(6, 16)
    G(z)
    assert (captured[0] - captured[0][:, :1]).abs().max() == 0  # every row the same w
    w = G.mapping(z).detach().mean(0)
    np.testing.assert_allclose(G.w_avg.numpy(), (1 - 0.995) * w.numpy(), rtol=1e-5, atol=1e-7)  # from zero


def test_minibatch_std_matches_numpy():
    x = torch.randn(8, 3, 4, 4, generator=torch.Generator().manual_seed(3))
    out = S.MinibatchStd(4)(x)
    assert out.shape == (8, 4, 4, 4)
    a = x.numpy().reshape(4, 2, 3, 4, 4)  # group g holds samples g*2 + n; sample m's group is m % 2
    stat = a.std(axis=0).mean(axis=(1, 2, 3))  # (2,)
    for m in range(8):
        np.testing.assert_allclose(out[m, 3].numpy(), np.full((4, 4), stat[m % 2]), rtol=1e-5)
    # a batch that 4 does not divide uses the largest group that does (6 -> 3)
    assert S.MinibatchStd(4)(torch.randn(6, 2, 4, 4)).shape == (6, 3, 4, 4)


@pytest.mark.parametrize("size,channels", [(8, 1), (16, 1), (28, 1), (32, 3), (64, 1)])
def test_shapes_at_every_supported_size(size, channels):
    G = small_g(size=size, channels=channels, n_classes=10)
    D = S.StyleDiscriminator((channels, size, size), n_classes=10, aux_classes=10, width=4, max_width=8)
    y = torch.arange(4) % 10
    x = G(torch.randn(4, 16), y)
    assert x.shape == (4, channels, size, size) and x.abs().max() <= 1
    out = D.forward_all(x, y)
    assert out["logits"].shape == (4,) and out["aux"].shape == (4, 10)
    assert G.res == max(16, 1 << (size - 1).bit_length())


def test_sizes_it_cannot_draw_are_refused():
    with pytest.raises(ValueError, match="too small"):
        small_g(size=2)
    with pytest.raises(ValueError, match="square"):
        S.StyleGenerator(16, (1, 28, 32))
    with pytest.raises(ValueError, match="conditional"):
        small_g(n_classes=10)(torch.randn(2, 16))


def test_the_preset_trains_keeps_an_ema_with_the_tracked_w_and_samples_deterministically():
    from gan_models.training import Trainer

    spec = V.resolve("stylegan", {"generator": {"width": 4, "max_width": 8, "w_dim": 16},
                                       "discriminator": {"width": 4, "max_width": 8}, "z_dim": 16})
    gan = V.build(spec, DataInfo("image", (1, 28, 28), 10))
    data = torch.randint(0, 256, (64, 1, 28, 28), dtype=torch.uint8)
    tr = Trainer(gan, data, batch_size=16, seed=0)
    before = [p.detach().clone() for p in tr.G_ema.parameters()]
    for _ in range(4):
        stats = tr.train_step(measure=True)
    assert torch.equal(tr.G_ema.w_avg, tr.G.w_avg) and tr.G.w_avg.abs().sum() > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, tr.G_ema.parameters()))
    assert {"loss/D", "loss/G"} <= set(stats) and all(np.isfinite(v) for v in stats.values())
    z = torch.randn(3, 16)
    assert torch.equal(tr.G_ema(z), tr.G_ema(z))  # eval mode: constant noise


# -- export and evaluation ---------------------------------------------------------------------
class _LinearStyle(torch.nn.Module):
    """A 'StyleGAN' whose w is 2 z + 1 and whose one-pixel image is w[1]: the w-space traversal's
    effect of dimension 1 is 6 standard deviations of w_1 (= 12), of every other dimension 0."""

    n_classes, num_ws = 0, 3

    def mapping_ws(self, z, y=None, psi=1.0):
        return (2 * z + 1)[:, None].expand(-1, self.num_ws, -1)

    def synthesis(self, ws):
        return ws[:, 0, 1][:, None, None, None].clone()


def test_w_space_traversal_measures_each_style_dimension_in_its_own_spread():
    from tasks.export import noise_traversal

    grid, record = noise_traversal(_LinearStyle(), 4, seed=0, space="w")
    effect = record["effect"]
    assert effect[1] == pytest.approx(12.0, rel=0.1)  # 6 sigma, sigma of 2 z estimated from 1,000 draws
    assert all(effect[d] == 0 for d in (0, 2, 3)) and record["dims"][0] == 1 and record["space"] == "w"
    row = grid[:7, 0, 0, 0]  # w_1 swept over mean + v sigma: equally spaced, centred near 1
    steps = row[1:] - row[:-1]
    assert torch.allclose(steps, steps[0].expand_as(steps)) and row[3].item() == pytest.approx(1.0, abs=0.2)


def test_style_mixing_grid_takes_coarse_styles_from_rows_and_fine_from_columns():
    from tasks.export import MIXING_SOURCES, style_mixing

    torch.manual_seed(0)
    G = small_g(size=32).eval()
    images, per_row, record = style_mixing(G, 16, seed=3)
    n = MIXING_SOURCES
    assert per_row == n + 1 and images.shape == ((n + 1) ** 2, 1, 32, 32)
    k = record["cutoff_row"]
    assert k == G.rgb_rows[1] == 3  # the first row read at 16 px
    gen = torch.Generator().manual_seed(3)  # the same draws, by hand
    z = torch.randn(2 * n, 16, generator=gen)
    w = G.mapping(z).detach()
    rows_w, cols_w = w[:n], w[n:]
    grid = images.view(n + 1, n + 1, 1, 32, 32)
    with torch.no_grad():
        for c in range(n):
            np.testing.assert_allclose(grid[0, c + 1].numpy(), G.synthesis(cols_w[c:c + 1, None].expand(
                -1, G.num_ws, -1))[0].numpy(), atol=1e-5)
        for r in (0, n - 1):
            np.testing.assert_allclose(grid[r + 1, 0].numpy(), G.synthesis(rows_w[r:r + 1, None].expand(
                -1, G.num_ws, -1))[0].numpy(), atol=1e-5)
            for c in (0, 2):
                ws = torch.cat([rows_w[r:r + 1, None].expand(-1, k, -1),
                                cols_w[c:c + 1, None].expand(-1, G.num_ws - k, -1)], 1)
                np.testing.assert_allclose(grid[r + 1, c + 1].numpy(), G.synthesis(ws)[0].numpy(), atol=1e-5)
    assert (grid[0, 0] == -1).all()  # the blank corner


def test_truncation_strip_runs_from_the_average_image_to_the_untruncated_one():
    from tasks.export import TRUNCATION_STRIP, truncation_strip

    G = small_g().eval()
    G.w_avg.copy_(torch.randn(16))
    strip = truncation_strip(G, 16, seed=4, rows=3).view(3, len(TRUNCATION_STRIP), 1, 28, 28)
    assert (strip[:, 0] - strip[:1, 0]).abs().max() < 1e-6  # psi 0: every row the average w's image
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        np.testing.assert_allclose(strip[:, -1].numpy(), G(z).numpy(), atol=1e-5)  # psi 1: G(z)
    assert (strip[0, 2] - strip[0, 0]).abs().max() > 1e-4


def test_stylegan_through_the_stages_reports_metrics_at_psi_1_and_the_truncation_tradeoff(project):
    from conftest import TINY, run_stages
    from gan_models.training import sample
    from tasks.layout import Layout, load_prepared
    from tasks.export import export
    from tasks.scoring import Scorer

    tiny = {"generator": {"width": 4, "max_width": 8, "w_dim": 16, "truncation_psi": 0.8},
            "discriminator": {"width": 4, "max_width": 8}, "z_dim": 16}
    doc = {**TINY, "train": {**TINY["train"], "steps": 6, "checkpoint_every": 3, "parallel": 1,
                             "variants": {"stylegan": tiny}}, "evaluate": {"n_samples": 100}}
    params, m, G, z_dim = run_stages(project, doc, "stylegan")
    layout = Layout()
    assert G.truncation_psi == 0.8  # as configured: samples and exports use it
    scorer = Scorer.load(layout, load_prepared(layout), "train")
    G.truncation_psi = 1.0
    assert m["fid"] == pytest.approx(scorer.score(sample(G, 100, z_dim, params.evaluate.seed))["fid"], rel=1e-9)
    G.truncation_psi = 0.5
    assert m["psi0.5_fid"] == pytest.approx(scorer.score(sample(G, 100, z_dim, params.evaluate.seed))["fid"],
                                            rel=1e-9)
    assert {"psi0.7_fid", "psi0.8_fid", "psi0.8_precision", "psi0.8_recall"} <= set(m)
    assert m["psi0.5_fid"] != pytest.approx(m["fid"])
    rec = export(params, "stylegan")
    for f in ("style_mixing.png", "truncation.png", "traversal_w.png", "traversal.png"):
        assert f in rec["files"] and (layout.samples_dir("stylegan") / f).exists()
    assert rec["stylegan"]["traversal_w"]["space"] == "w" and len(rec["stylegan"]["traversal_w"]["effect"]) == 16
