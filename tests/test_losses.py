"""Losses and penalties against closed forms and hand-computed autograd values."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gan_models import losses as L
from gan_models.networks import spectral_norm


def _logits():
    return torch.tensor([2.0, -1.0, 0.5]), torch.tensor([-3.0, 0.0, 1.5])


def test_bce_objectives_match_log_formulas():
    r, f = _logits()
    sig = lambda t: 1 / (1 + torch.exp(-t))  # noqa: E731
    loss = L.BCELoss()
    d_ref = -(torch.log(sig(r)).mean() + torch.log(1 - sig(f)).mean())
    assert loss.d_objective(r, f).item() == pytest.approx(d_ref.item(), rel=1e-6)
    assert loss.g_objective(f).item() == pytest.approx(-torch.log(sig(f)).mean().item(), rel=1e-6)
    sat = L.BCELoss(non_saturating=False)
    assert sat.g_objective(f).item() == pytest.approx(torch.log(1 - sig(f)).mean().item(), rel=1e-6)
    smooth = L.BCELoss(label_smoothing=0.1)
    ref = -(0.9 * torch.log(sig(r)) + 0.1 * torch.log(1 - sig(r))).mean() - torch.log(1 - sig(f)).mean()
    assert smooth.d_objective(r, f).item() == pytest.approx(ref.item(), rel=1e-6)


def test_hinge_lsgan_wgan_closed_forms():
    # Worked by hand on r = (2, -1, 0.5), f = (-3, 0, 1.5): mean r = 0.5, mean f = -0.5.
    r, f = _logits()
    h = L.HingeLoss()  # relu(1 - r) = (0, 2, 0.5), relu(1 + f) = (0, 1, 2.5)
    assert h.d_objective(r, f).item() == pytest.approx(2.5 / 3 + 3.5 / 3, rel=1e-6)
    assert h.g_objective(f).item() == pytest.approx(0.5, rel=1e-6)  # -mean f
    ls = L.LSGANLoss()  # (r - 1)^2 = (1, 4, 0.25), f^2 = (9, 0, 2.25), (f - 1)^2 = (16, 1, 0.25)
    assert ls.d_objective(r, f).item() == pytest.approx(0.5 * (5.25 / 3 + 11.25 / 3), rel=1e-6)  # 2.75
    assert ls.g_objective(f).item() == pytest.approx(0.5 * 17.25 / 3, rel=1e-6)  # 2.875
    w = L.WassersteinLoss()
    assert w.d_objective(r, f).item() == pytest.approx(-1.0, rel=1e-6)  # mean f - mean r
    assert w.g_objective(f).item() == pytest.approx(0.5, rel=1e-6)  # -mean f


def test_gradient_penalty_matches_hand_computed_gradient():
    # D(x) = sum(w * x^2): grad = 2 w x, so the penalty has a closed form at each interpolate.
    w = torch.tensor([0.5, -1.0, 2.0])

    class Quad(nn.Module):
        def forward(self, x):
            return (w * x ** 2).sum(1)

    real = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 1.0]])
    fake = torch.tensor([[0.0, 1.0, 1.0], [2.0, 0.0, -1.0]])
    gen = torch.Generator().manual_seed(0)
    gp = L.gradient_penalty(Quad(), real, fake, generator=gen)
    alpha = torch.rand((2, 1), generator=torch.Generator().manual_seed(0))
    x_hat = alpha * real + (1 - alpha) * fake
    expected = ((2 * w * x_hat).norm(dim=1) - 1).pow(2).mean()
    assert gp.item() == pytest.approx(expected.item(), rel=1e-6)


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    lin = nn.Linear(4, 1, bias=False)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[0.6, 0.8, 0.0, 0.0]]))  # ||w|| = 1
    D = lambda x: lin(x).squeeze(1)  # noqa: E731
    gp = L.gradient_penalty(D, torch.randn(8, 4), torch.randn(8, 4))
    assert gp.item() == pytest.approx(0.0, abs=1e-10)


def test_weight_clipping_after_critic_step():
    D = nn.Linear(3, 1)
    with torch.no_grad():
        D.weight.fill_(0.5)
    L.WassersteinLoss(clip=0.01).after_step("D", None, D)
    assert D.weight.abs().max().item() == pytest.approx(0.01)
    assert D.bias.abs().max().item() <= 0.01


def test_spectral_norm_normalises_the_largest_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(16, 32), nn.LeakyReLU(), nn.Linear(32, 8))
    spectral_norm(net)
    for _ in range(30):  # power iterations run in training-mode forwards
        net(torch.randn(4, 16))
    net.eval()
    for layer in (net[0], net[2]):
        sigma = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
        assert sigma == pytest.approx(1.0, abs=1e-3)


def test_losses_reject_bad_options():
    with pytest.raises(ValueError, match="n_critic"):
        L.WassersteinLoss(n_critic=0)
    with pytest.raises(ValueError, match="label_smoothing"):
        L.BCELoss(label_smoothing=0.7)
    with pytest.raises(ValueError, match="gp_weight"):
        L.WassersteinGPLoss(gp_weight=-1.0)
    assert math.isfinite(L.BCELoss().g_objective(torch.tensor([100.0, -100.0])).item())
