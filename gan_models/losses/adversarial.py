"""The adversarial objectives of generation from noise: BCE, least squares, hinge, Wasserstein
(clipped and with gradient penalty); each registered beside its class."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .base import LOSSES, GANLoss


class BCELoss(GANLoss):
    """The original minimax objective with a sigmoid discriminator (Goodfellow et al. 2014).

    ``non_saturating`` (default) trains G to maximise log D(G(z)); the saturating form minimises
    log(1 - D(G(z))) and shows the vanishing generator gradients of the paper's analysis.
    """

    def __init__(self, non_saturating: bool = True, label_smoothing: float = 0.0):
        if not 0.0 <= label_smoothing < 0.5:
            raise ValueError(f"loss.label_smoothing must be in [0, 0.5), got {label_smoothing}")
        self.non_saturating = non_saturating
        self.label_smoothing = label_smoothing

    def d_objective(self, real_out, fake_out):
        if self.label_smoothing:  # one-sided: real targets 1 - s (Salimans et al. 2016)
            target = torch.full_like(real_out, 1.0 - self.label_smoothing)
            real_term = F.binary_cross_entropy_with_logits(real_out, target)
        else:
            real_term = F.softplus(-real_out).mean()  # -log sigmoid(l_real)
        return real_term + F.softplus(fake_out).mean()  # -log(1 - sigmoid(l_fake))

    def g_objective(self, fake_out):
        if self.non_saturating:
            return F.softplus(-fake_out).mean()  # -log sigmoid(l_fake)
        return -F.softplus(fake_out).mean()  # log(1 - sigmoid(l_fake))


class LSGANLoss(GANLoss):
    """Least squares (Mao et al. 2017), a-b-c = 0-1-1: D: (D(x)-1)^2 + D(G(z))^2, G: (D(G(z))-1)^2, each halved."""

    probabilistic = False

    def d_objective(self, real_out, fake_out):
        return 0.5 * ((real_out - 1).pow(2).mean() + fake_out.pow(2).mean())

    def g_objective(self, fake_out):
        return 0.5 * (fake_out - 1).pow(2).mean()


class HingeLoss(GANLoss):
    """Hinge loss (Lim & Ye 2017; SNGAN, SAGAN): D: relu(1 - D(x)) + relu(1 + D(G(z))), G: -D(G(z))."""

    probabilistic = False

    def d_objective(self, real_out, fake_out):
        return F.relu(1 - real_out).mean() + F.relu(1 + fake_out).mean()

    def g_objective(self, fake_out):
        return -fake_out.mean()


class WassersteinLoss(GANLoss):
    """WGAN (Arjovsky et al. 2017): critic maximises D(x) - D(G(z)); weights clipped to [-c, c]."""

    probabilistic = False

    def __init__(self, n_critic: int = 5, clip: float = 0.01):
        if n_critic < 1:
            raise ValueError(f"loss.n_critic must be >= 1, got {n_critic}")
        if clip < 0:
            raise ValueError(f"loss.clip must be >= 0 (0 disables clipping), got {clip}")
        self.d_steps = n_critic
        self.clip = clip

    def d_objective(self, real_out, fake_out):
        return fake_out.mean() - real_out.mean()

    def g_objective(self, fake_out):
        return -fake_out.mean()

    def after_step(self, phase, G, D):
        if phase == "D" and self.clip > 0:
            with torch.no_grad():
                for p in D.parameters():
                    p.clamp_(-self.clip, self.clip)


class WassersteinGPLoss(WassersteinLoss):
    """WGAN-GP (Gulrajani et al. 2017): lambda * (||grad_x D(x_hat)||_2 - 1)^2, x_hat on real-fake lines.

    ``drift`` adds eps * D(x)^2 on real data (ProGAN's drift term; 0 disables it)."""

    def __init__(self, n_critic: int = 5, gp_weight: float = 10.0, drift: float = 0.0):
        super().__init__(n_critic=n_critic, clip=0.0)
        if gp_weight < 0:
            raise ValueError(f"loss.gp_weight must be >= 0, got {gp_weight}")
        if drift < 0:
            raise ValueError(f"loss.drift must be >= 0, got {drift}")
        self.gp_weight, self.drift = gp_weight, drift

    def d_penalty(self, D, real, fake, real_labels, fake_labels):
        # alphas come from torch's global RNG, which the trainer seeds and checkpoints; fakes of a
        # conditional G are made for the real batch's labels, so interpolates keep those labels
        gp = self.gp_weight * gradient_penalty(lambda x: D(x, real_labels), real, fake)
        if self.drift:
            gp = gp + self.drift * D(real, real_labels).pow(2).mean()
        return gp


def gradient_penalty(D: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """mean over the batch of (||grad D(x_hat)||_2 - 1)^2 with x_hat = a*real + (1-a)*fake, a ~ U(0,1)."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()


LOSSES.register("bce", BCELoss, "sigmoid cross-entropy, non-saturating G loss by default")
LOSSES.register("lsgan", LSGANLoss, "least squares (Mao et al. 2017)")
LOSSES.register("hinge", HingeLoss, "hinge loss (Lim & Ye 2017; SNGAN/SAGAN)")
LOSSES.register("wgan", WassersteinLoss, "Wasserstein critic with weight clipping, n_critic")
LOSSES.register("wgan_gp", WassersteinGPLoss, "Wasserstein critic with gradient penalty, n_critic")
