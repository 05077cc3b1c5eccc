"""The translation networks (U-Net, PatchGAN, ResNet-block generator) and metrics (L1, PSNR, SSIM,
label preservation) against closed forms and scikit-image."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gan_models import metrics as M
from gan_models.networks import translation as T


# -- networks -----------------------------------------------------------------------------------------
UNET_CASES = [(size, depth, padded, cin, cout) for size, depth, padded in [(28, 5, 32), (32, 5, 32), (64, 6, 64)]
              for cin, cout in [(1, 1), (1, 3), (3, 1)]] + [(256, 8, 256, 1, 3)]


@pytest.mark.parametrize("size,depth,padded,cin,cout", UNET_CASES)
def test_unet_maps_inputs_to_the_target_shape_at_every_size(size, depth, padded, cin, cout):
    G = T.UNetGenerator((cin, size, size), (cout, size, size), width=4)
    assert (G.depth, G.padded_size) == (depth, padded)
    out = G(torch.randn(2, cin, size, size))
    assert out.shape == (2, cout, size, size) and out.abs().max() <= 1
    G.eval()
    x = torch.randn(2, cin, size, size).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(G(x), G(x.contiguous()), atol=1e-6)


def test_unet_skip_connections_carry_detail_past_the_bottleneck():
    """With the innermost layers' weights zeroed nothing passes the 1x1 bottleneck, yet a one-pixel
    change of the input still changes the output next to it: only the skips can carry it there."""
    torch.manual_seed(0)
    G = T.UNetGenerator((1, 32, 32), (1, 32, 32), width=4, dropout=0.0).eval()
    with torch.no_grad():
        for layer in (G.down[-1], G.up[0]):
            for m in layer.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
                    m.weight.zero_()
    x = torch.zeros(1, 1, 32, 32)
    y = x.clone()
    y[0, 0, 10, 20] = 1.0
    diff = (G(y) - G(x)).abs()[0, 0]
    assert diff[8:13, 18:23].max() > 1e-4  # the change arrives where it was made

    class NoSkips(T.UNetGenerator):  # the same network with the skips fed zeros
        def forward(self, x, y=None):
            h = T._pad_to(x, self.padded_size)
            shapes = []
            for layer in self.down:
                h = layer(h)
                shapes.append(h.shape)
            for j, layer in enumerate(self.up):
                h = layer(h if j == 0 else torch.cat([h, h.new_zeros(shapes[-1 - j])], 1))
            return self.out(T._crop(h, self.size))

    mutant = NoSkips((1, 32, 32), (1, 32, 32), width=4, dropout=0.0).eval()
    mutant.load_state_dict(G.state_dict())
    assert torch.equal(mutant(y), mutant(x))  # without skips the zeroed bottleneck passes nothing


def test_unet_dropout_is_its_noise_in_training_only():
    torch.manual_seed(0)
    G = T.UNetGenerator((1, 28, 28), (1, 28, 28), width=4)
    x = torch.randn(3, 1, 28, 28)
    G.train()
    assert not torch.equal(G(x), G(x))  # dropout on: two draws differ
    G.eval()
    assert torch.equal(G(x), G(x))
    assert sum(isinstance(m, torch.nn.Dropout) for m in G.modules()) == 3  # the three innermost decoder layers


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_patchgan_receptive_field_equals_its_closed_form(n):
    assert T.patch_receptive_field(n) == 9 * 2 ** n - 2  # two 4x4 stride-1 layers, then n stride-2 ones
    D = T.PatchDiscriminator((1, 300, 300), width=2, n_layers=n)
    assert T.receptive_field_of(D) == D.receptive_field == 9 * 2 ** n - 2
    assert T.patch_receptive_field(3) == 70  # the paper's 70x70 PatchGAN


@pytest.mark.parametrize("n", [1, 2, 3])
def test_patchgan_output_depends_on_exactly_its_receptive_field(n):
    """The gradient of one output logit is nonzero on a window of exactly the receptive field."""
    torch.manual_seed(0)
    D = T.PatchDiscriminator((1, 128, 128), width=2, n_layers=n, norm="none").eval()
    x = torch.randn(1, 1, 128, 128, requires_grad=True)
    out = D(x)
    i, j = out.shape[-2] // 2, out.shape[-1] // 2
    out[0, 0, i, j].backward()
    g = x.grad[0, 0].abs() > 0
    rows, cols = np.nonzero(g.any(1).numpy())[0], np.nonzero(g.any(0).numpy())[0]
    assert rows.max() - rows.min() + 1 == D.receptive_field
    assert cols.max() - cols.min() + 1 == D.receptive_field


@pytest.mark.parametrize("size,n_layers,out", [(28, 1, 12), (32, 1, 14), (70, 3, 6), (256, 4, 14)])
def test_patchgan_picks_the_deepest_layout_that_fits_and_maps_to_a_patch_grid(size, n_layers, out):
    D = T.PatchDiscriminator((2, size, size), width=4)
    assert D.n_layers == n_layers and D.receptive_field <= size < T.patch_receptive_field(n_layers + 1)
    r = D.forward_all(torch.randn(3, 2, size, size))
    assert r["logits"].shape == (3, 1, out, out) and r["aux"] is None and r["features"].shape[0] == 3


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("cin,cout", [(1, 1), (3, 1)])
def test_resnet_translator_keeps_the_size(size, cin, cout):
    G = T.ResnetTranslator((cin, size, size), (cout, size, size), width=4, n_blocks=2)
    out = G(torch.randn(2, cin, size, size))
    assert out.shape == (2, cout, size, size) and out.abs().max() <= 1
    odd = T.ResnetTranslator((1, 30, 30), (1, 30, 30), width=4, n_blocks=1)  # 30 is padded to 32 inside
    assert odd.padded_size == 32 and odd(torch.randn(1, 1, 30, 30)).shape == (1, 1, 30, 30)


def test_pairs_route_each_direction_to_its_own_network():
    ab = T.ResnetTranslator((1, 28, 28), (1, 28, 28), width=4, n_blocks=1)
    ba = T.ResnetTranslator((1, 28, 28), (1, 28, 28), width=4, n_blocks=1)
    G = T.TranslatorPair(ab, ba).eval()
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(G(x), ab(x)) and torch.equal(G.reverse(x), ba(x)) and not torch.equal(ab(x), ba(x))
    db, da = T.PatchDiscriminator((1, 28, 28), width=4), T.PatchDiscriminator((1, 28, 28), width=4)
    D = T.DiscriminatorPair(db, da).eval()
    assert torch.equal(D(x), db(x)) and not torch.equal(db(x), da(x))


def test_mismatched_sizes_are_refused_naming_both_shapes():
    with pytest.raises(ValueError, match=r"input \(1, 28, 28\) and output \(1, 32, 32\)"):
        T.UNetGenerator((1, 28, 28), (1, 32, 32))
    with pytest.raises(ValueError, match="too small"):
        T.PatchDiscriminator((1, 8, 8), n_layers=3)


# -- metrics --------------------------------------------------------------------------------------------
skimage_metrics = pytest.importorskip("skimage.metrics")


def _smooth(rng, shape):
    from scipy.ndimage import gaussian_filter

    x = gaussian_filter(rng.random(shape), sigma=(0, 0, 2, 2))
    return (x - x.min()) / (x.max() - x.min())


def _reference_ssim(a, b):
    return np.mean([skimage_metrics.structural_similarity(p, q, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                                          use_sample_covariance=False, channel_axis=0)
                    for p, q in zip(a, b)])


@pytest.mark.parametrize("channels,size", [(1, 28), (3, 32), (1, 64)])
def test_ssim_equals_scikit_image(channels, size):
    rng = np.random.default_rng(channels * size)
    shape = (6, channels, size, size)
    noisy = [(rng.random(shape), rng.random(shape)),  # unrelated noise: SSIM near 0
             (_smooth(rng, shape), None),  # a smooth image against a perturbed copy: near 1
             ]
    a = _smooth(rng, shape)
    b = np.clip(a + 0.1 * rng.standard_normal(shape), 0, 1)
    for x, y in [noisy[0], (a, b), (a, np.clip(a * 0.7 + 0.1, 0, 1))]:
        assert M.ssim(x, y) == pytest.approx(_reference_ssim(x, y), abs=1e-6)
    u8a, u8b = np.round(a * 255).astype(np.uint8), np.round(b * 255).astype(np.uint8)
    assert M.ssim(u8a, u8b) == pytest.approx(_reference_ssim(u8a / 255.0, u8b / 255.0), abs=1e-6)
    assert 0.2 < M.ssim(a, b) < 0.95 and abs(M.ssim(*noisy[0])) < 0.1  # the test images differ in kind


def test_psnr_against_the_closed_form_and_scikit_image():
    rng = np.random.default_rng(1)
    x = 0.2 + 0.6 * rng.random((4, 1, 28, 28))
    for d in (0.01, 0.05, 0.2):
        assert M.psnr(x, x + d) == pytest.approx(10 * np.log10(1 / d ** 2), rel=1e-9)
    y = np.clip(x + 0.05 * rng.standard_normal(x.shape), 0, 1)
    ref = np.mean([skimage_metrics.peak_signal_noise_ratio(p, q, data_range=1.0) for p, q in zip(x, y)])
    assert M.psnr(x, y) == pytest.approx(ref, rel=1e-9)
    assert M.psnr(x, x) == 100.0  # identical images: capped, finite


def test_l1_and_label_preservation_closed_forms():
    x = np.zeros((2, 1, 4, 4))
    assert M.l1_error(x, x + 0.25) == pytest.approx(0.25)
    assert M.l1_error(np.zeros((1, 1, 2, 2), np.uint8), np.full((1, 1, 2, 2), 51, np.uint8)) == pytest.approx(0.2)
    logits = np.array([[2.0, 0.1, 0.0], [0.0, 3.0, 1.0], [0.0, 0.2, 0.1], [5.0, 0.0, 0.0]])
    assert M.label_preservation(logits, np.array([0, 1, 2, 0])) == 0.75
    with pytest.raises(ValueError, match=r"\(2, 1, 4, 4\) and \(2, 1, 5, 5\)"):
        M.ssim(x, np.zeros((2, 1, 5, 5)))
