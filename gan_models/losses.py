"""Adversarial losses.

A loss object owns everything that differs between GAN objectives: how many critic steps per
generator step, the penalty terms, weight clipping.  The training loop calls
``accumulate_gradients(phase, G, D, real, z)`` for phase "D" or "G"; the loss computes its
objective, calls ``backward()`` and returns detached statistics.  ``after_step`` runs after the
optimizer step of a phase (WGAN's weight clipping lives there).

All discriminators return raw logits / critic values of shape (B,).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

Stats = dict[str, torch.Tensor]


class GANLoss:
    """Base class. ``d_steps`` is the number of D updates per G update (n_critic)."""

    d_steps: int = 1
    #: True when D outputs are logits of a probability (D/real, D/fake are then sigmoids).
    probabilistic: bool = True

    def d_objective(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_objective(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor | None:
        return None

    def _score(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out).mean() if self.probabilistic else out.mean()

    def accumulate_gradients(self, phase: str, G: nn.Module, D: nn.Module,
                             real: torch.Tensor, z: torch.Tensor) -> Stats:
        if phase == "D":
            with torch.no_grad():
                fake = G(z)
            real_out, fake_out = D(real), D(fake)
            loss = self.d_objective(real_out, fake_out)
            stats = {"loss/D": loss.detach(), "D/real": self._score(real_out.detach()),
                     "D/fake": self._score(fake_out.detach())}
            penalty = self.d_penalty(D, real, fake)
            if penalty is not None:
                stats["loss/D_penalty"] = penalty.detach()
                loss = loss + penalty
            loss.backward()
            return stats
        if phase == "G":
            fake_out = D(G(z))
            loss = self.g_objective(fake_out)
            loss.backward()
            return {"loss/G": loss.detach(), "D/fake_G": self._score(fake_out.detach())}
        raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")

    def after_step(self, phase: str, G: nn.Module, D: nn.Module) -> None:
        pass


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
    """WGAN-GP (Gulrajani et al. 2017): lambda * (||grad_x D(x_hat)||_2 - 1)^2, x_hat on real-fake lines."""

    def __init__(self, n_critic: int = 5, gp_weight: float = 10.0):
        super().__init__(n_critic=n_critic, clip=0.0)
        if gp_weight < 0:
            raise ValueError(f"loss.gp_weight must be >= 0, got {gp_weight}")
        self.gp_weight = gp_weight

    def d_penalty(self, D, real, fake):
        # alphas come from torch's global RNG, which the trainer seeds and checkpoints
        return self.gp_weight * gradient_penalty(D, real, fake)


def gradient_penalty(D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                     generator: torch.Generator | None = None) -> torch.Tensor:
    """mean over the batch of (||grad D(x_hat)||_2 - 1)^2 with x_hat = a*real + (1-a)*fake, a ~ U(0,1)."""
    shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    x_hat = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(x_hat).sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(2, dim=1) - 1).pow(2).mean()
