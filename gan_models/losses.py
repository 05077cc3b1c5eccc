"""Adversarial losses and the tricks that change how a loss is computed.

A loss object owns everything that differs between GAN objectives: how many critic steps per
generator step, penalties, weight clipping, and the tricks of ``Tricks`` (feature matching,
unrolled discriminator, differentiable augmentation, auxiliary classifier).  The training loop
calls ``accumulate_gradients(phase, G, D, ctx)`` for phase "D" or "G"; the loss draws what it
needs from ``ctx`` (real batches, noise, labels), computes its objective, calls ``backward()`` and
returns detached statistics.  ``after_step`` runs after the optimizer step of a phase (WGAN's
weight clipping lives there).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from .registry import Registry

Stats = dict[str, torch.Tensor]


@dataclass
class Batch:
    real: torch.Tensor  # model range
    real_labels: torch.Tensor | None
    z: torch.Tensor
    fake_labels: torch.Tensor | None  # labels given to G: those of the real batch (conditional variants)


class Context(Protocol):
    def batch(self) -> Batch: ...


@dataclass(frozen=True)
class Tricks:
    """Options any loss can take; they change how the objectives are computed."""

    feature_matching: bool = False  # G matches D's mean features on real data (Salimans et al. 2016)
    unrolled_steps: int = 0  # k: G's objective against D unrolled k SGD steps ahead (Metz et al. 2017)
    unrolled_lr: float = 0.01  # SGD step size of the unrolled D updates
    augment: str = ""  # DiffAugment policies applied to every D input, e.g. "color,translation,cutout"
    aux_weight: float = 1.0  # ACGAN: weight of the auxiliary classification loss
    pack: int = 1  # PacGAN: D judges this many samples at once (Lin et al. 2018); 1 = off.  A step then
    #   draws batch_size packs (batch_size * pack samples), as the paper's minibatch does
    perceptual_weight: float = 0.0  # weight of a perceptual term in G's loss (0 = off): the distance of
    #   mean features of real and generated images on a fixed feature network
    perceptual_net: str = "classifier"  # classifier (the data set's own) or vgg16 (torchvision weights file)

    def __post_init__(self):
        if self.unrolled_steps < 0:
            raise ValueError(f"tricks.unrolled_steps must be >= 0, got {self.unrolled_steps}")
        if self.unrolled_lr <= 0:
            raise ValueError(f"tricks.unrolled_lr must be > 0, got {self.unrolled_lr}")
        bad = [p for p in _policies(self.augment) if p not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"tricks.augment: unknown policy {bad[0]!r}; allowed: {', '.join(AUGMENTATIONS.names())}")
        if self.pack < 1:
            raise ValueError(f"tricks.pack must be >= 1, got {self.pack}")
        if self.aux_weight < 0:
            raise ValueError(f"tricks.aux_weight must be >= 0, got {self.aux_weight}")
        if self.perceptual_weight < 0:
            raise ValueError(f"tricks.perceptual_weight must be >= 0, got {self.perceptual_weight}")
        if self.perceptual_net not in ("classifier", "vgg16"):
            raise ValueError(f"tricks.perceptual_net must be classifier or vgg16, got {self.perceptual_net!r}")


class GANLoss:
    """Base class.  ``d_steps`` is the number of D updates per G update (n_critic)."""

    d_steps: int = 1
    #: True when D outputs are logits of a probability (D/real, D/fake are then sigmoids).
    probabilistic: bool = True
    tricks: Tricks  # set at the bottom of this module (Tricks validates against AUGMENTATIONS)
    auxiliary: bool = False  # ACGAN: D has a classifier head trained on real and fake labels
    #: Fixed feature network for tricks.perceptual_weight: images -> (B, F) features.  The caller
    #: provides it (the train stage loads the data set's classifier or VGG16).
    perceptual_net: Callable[[torch.Tensor], torch.Tensor] | None = None

    # -- the objective on D outputs ----------------------------------------------------------
    def d_objective(self, real_out: torch.Tensor, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def g_objective(self, fake_out: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def d_penalty(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor,
                  real_labels: torch.Tensor | None, fake_labels: torch.Tensor | None) -> torch.Tensor | None:
        return None

    def _score(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out).mean() if self.probabilistic else out.mean()

    def _d(self, D: nn.Module, x: torch.Tensor, y: torch.Tensor | None, params=None) -> dict:
        """D's outputs on augmented ``x`` (DiffAugment applies to real and fake alike)."""
        x = diff_augment(x, self.tricks.augment)
        if params is None:
            return D.forward_all(x, y)
        return torch.func.functional_call(D, params, (x, y), strict=False, tie_weights=True)  # logits

    # -- phases ------------------------------------------------------------------------------
    def accumulate_gradients(self, phase: str, G: nn.Module, D: nn.Module, ctx: Context) -> Stats:
        if phase == "D":
            return self._d_phase(G, D, ctx.batch())
        if phase == "G":
            return self._g_phase(G, D, ctx)
        raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")

    def _d_phase(self, G, D, b: Batch) -> Stats:
        with torch.no_grad():
            fake = G(b.z, b.fake_labels)
        r, f = self._d(D, b.real, b.real_labels), self._d(D, fake, b.fake_labels)
        loss = self.d_objective(r["logits"], f["logits"])
        stats = {"loss/D": loss.detach(), "D/real": self._score(r["logits"].detach()),
                 "D/fake": self._score(f["logits"].detach())}
        penalty = self.d_penalty(D, b.real, fake, b.real_labels, b.fake_labels)
        if penalty is not None:
            stats["loss/D_penalty"] = penalty.detach()
            loss = loss + penalty
        if self.auxiliary:  # ACGAN: classify real and generated samples by their labels
            aux = F.cross_entropy(r["aux"], b.real_labels) + F.cross_entropy(f["aux"], b.fake_labels)
            stats["loss/D_aux"] = aux.detach()
            loss = loss + self.tricks.aux_weight * aux
        loss.backward()
        return stats

    def _g_phase(self, G, D, ctx: Context) -> Stats:
        t = self.tricks
        b = ctx.batch()
        fake = G(b.z, b.fake_labels)
        stats: Stats = {}
        if t.unrolled_steps:
            params = self._unrolled_params(G, D, ctx)
            out = self._d(D, fake, b.fake_labels, params)
            loss = self.g_objective(out)
            stats["D/fake_G"] = self._score(out.detach())
        else:
            f = self._d(D, fake, b.fake_labels)
            if t.feature_matching:
                # ||E f(x) - E f(G(z))||^2 on D's last hidden features (real side is a constant)
                with torch.no_grad():
                    real_feats = self._d(D, b.real, b.real_labels)["features"]
                loss = (real_feats.mean(0) - f["features"].mean(0)).pow(2).sum()
            else:
                loss = self.g_objective(f["logits"])
            stats["D/fake_G"] = self._score(f["logits"].detach())
            if self.auxiliary:
                aux = F.cross_entropy(f["aux"], b.fake_labels)
                stats["loss/G_aux"] = aux.detach()
                loss = loss + t.aux_weight * aux
        if t.perceptual_weight:
            if self.perceptual_net is None:
                raise ValueError("tricks.perceptual_weight > 0 needs a feature network (loss.perceptual_net)")
            with torch.no_grad():
                real_feats = self.perceptual_net(b.real)
            # ||E phi(x) - E phi(G(z))||^2 on a fixed network (perceptual feature matching)
            perc = (real_feats.mean(0) - self.perceptual_net(fake).mean(0)).pow(2).sum()
            stats["loss/G_perceptual"] = perc.detach()
            loss = loss + t.perceptual_weight * perc
        loss.backward()
        stats["loss/G"] = loss.detach()
        return stats

    def _unrolled_params(self, G, D, ctx: Context) -> dict[str, torch.Tensor]:
        """D's parameters after k differentiable SGD steps on its own objective.

        The fakes inside the unrolled steps keep their graph to G, so G's gradient accounts for
        how D would respond to it (Metz et al. 2017, eq. 9: backpropagation through the steps).
        """
        params = {n: p.detach().requires_grad_(True) for n, p in D.named_parameters()}
        for _ in range(self.tricks.unrolled_steps):
            b = ctx.batch()
            fake = G(b.z, b.fake_labels)
            loss = self.d_objective(self._d(D, b.real, b.real_labels, params), self._d(D, fake, b.fake_labels, params))
            grads = torch.autograd.grad(loss, list(params.values()), create_graph=True)
            params = {n: p - self.tricks.unrolled_lr * g for (n, p), g in zip(params.items(), grads)}
        return params

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


# ----------------------------------------------------------------------------------------------
# DiffAugment (Zhao et al. 2020): the same random, differentiable transforms on real and fake
# inputs of D.  Randomness from torch's global RNG (seeded and checkpointed by the trainer).


def _brightness(x):
    return x + (torch.rand(x.shape[0], 1, 1, 1, device=x.device) - 0.5)


def _saturation(x):
    mean = x.mean(1, keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) * 2) + mean


def _contrast(x):
    mean = x.mean((1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(x.shape[0], 1, 1, 1, device=x.device) + 0.5) + mean


def _translation(x, ratio: float = 0.125):
    """Shift by up to ratio * size pixels, padding with zeros (reflect-free, as DiffAugment)."""
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    tx = torch.randint(-sh, sh + 1, (b, 1, 1), device=x.device)
    ty = torch.randint(-sw, sw + 1, (b, 1, 1), device=x.device)
    gi, gj = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gi = torch.clamp(gi.unsqueeze(0) + tx + 1, 0, h + 1)
    gj = torch.clamp(gj.unsqueeze(0) + ty + 1, 0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1])
    idx = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[idx, gi, gj].permute(0, 3, 1, 2)


def _cutout(x, ratio: float = 0.5):
    """Zero a random square of ratio * size per sample."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), device=x.device)
    ox = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), device=x.device)
    gi = torch.arange(h, device=x.device)[None, :, None]
    gj = torch.arange(w, device=x.device)[None, None, :]
    inside = (gi >= oy - ch // 2) & (gi < oy - ch // 2 + ch) & (gj >= ox - cw // 2) & (gj < ox - cw // 2 + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


# DiffAugment policies (tricks.augment): a name to the differentiable image ops it applies in
# turn, each (N, C, H, W) -> (N, C, H, W) on real and fake batches alike.  Plugins add their own.
AUGMENTATIONS: Registry[list[Callable[[torch.Tensor], torch.Tensor]]] = Registry("augmentation policy")
AUGMENTATIONS.register("color", [_brightness, _saturation, _contrast], "random brightness, saturation, contrast")
AUGMENTATIONS.register("translation", [_translation], "random shift by up to 1/8 of the size, zero padded")
AUGMENTATIONS.register("cutout", [_cutout], "a random square of half the size set to zero")


def _policies(policy: str) -> list[str]:
    return [p.strip() for p in policy.split(",") if p.strip()]


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    if not policy or x.dim() != 4:
        return x  # points data is never augmented
    for p in _policies(policy):
        ops = AUGMENTATIONS.get(p)
        if not isinstance(ops, (list, tuple)):
            ops = [ops]
        for fn in ops:
            x = fn(x)
    return x


GANLoss.tricks = Tricks()
