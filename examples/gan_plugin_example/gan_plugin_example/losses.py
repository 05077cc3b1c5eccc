"""Least squares GAN with chosen targets (Mao et al. 2017, eq. 2)."""

from __future__ import annotations

from gan_models.losses import GANLoss


class LeastSquaresTargets(GANLoss):
    """D: 0.5 E[(D(x) - b)^2] + 0.5 E[(D(G(z)) - a)^2]; G: 0.5 E[(D(G(z)) - c)^2].

    The paper's two settings: a, b, c = -1, 1, 0 (b - c = 1, b - a = 2: minimises the Pearson
    chi-squared divergence) and 0, 1, 1 (the built-in ``lsgan``).
    """

    probabilistic = False  # D outputs scores, not logits of a probability

    def __init__(self, a: float = -1.0, b: float = 1.0, c: float = 0.0):
        if a == b:
            raise ValueError(f"loss.a and loss.b must differ (the targets for fake and real), got {a}")
        self.a, self.b, self.c = float(a), float(b), float(c)

    def d_objective(self, real_out, fake_out):
        return 0.5 * ((real_out - self.b).pow(2).mean() + (fake_out - self.a).pow(2).mean())

    def g_objective(self, fake_out):
        return 0.5 * (fake_out - self.c).pow(2).mean()
