"""The loss interface, the tricks any loss takes, and the loss registry.

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
from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Registry, call_with_options
from .augment import AUGMENTATIONS, diff_augment, policies

Stats = dict[str, torch.Tensor]


@dataclass
class Batch:
    real: torch.Tensor  # model range
    real_labels: torch.Tensor | None
    z: torch.Tensor
    fake_labels: torch.Tensor | None  # labels given to G: those of the real batch (conditional variants)
    # Translation: input-domain images (model range).  Paired data: source[i] is the input whose
    # target is real[i]; unpaired data: an independent draw from the input domain.
    source: torch.Tensor | None = None


class Context(Protocol):
    step: int  # G updates done so far (lazy regularisation counts them)

    def batch(self) -> Batch: ...

    # Optional: the loss to call backward on (the training loop's gradient scaler under fp16 mixed
    # precision); a context without it backpropagates the loss as it is (``backward``).
    # def scale(self, loss: torch.Tensor) -> torch.Tensor: ...


def backward(ctx: Any, loss: torch.Tensor) -> None:
    """``loss.backward()``, scaled first by the context's ``scale`` when it has one (fp16)."""
    scale = getattr(ctx, "scale", None)
    (scale(loss) if scale is not None else loss).backward()


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
    r1: float = 0.0  # gamma of the R1 penalty gamma/2 * E ||grad_x D(x)||^2 on real data (Mescheder et al.
    #   2018; StyleGAN2); 0 = off.  Best with a D without BatchNorm
    r1_every: int = 1  # lazy regularisation: the penalty every k-th step, weighted by k (StyleGAN2: 16)

    def __post_init__(self):
        if self.unrolled_steps < 0:
            raise ValueError(f"tricks.unrolled_steps must be >= 0, got {self.unrolled_steps}")
        if self.unrolled_lr <= 0:
            raise ValueError(f"tricks.unrolled_lr must be > 0, got {self.unrolled_lr}")
        bad = [p for p in policies(self.augment) if p not in AUGMENTATIONS]
        if bad:
            raise ValueError(f"tricks.augment: unknown policy {bad[0]!r}; allowed: {', '.join(AUGMENTATIONS.names())}")
        if self.pack < 1:
            raise ValueError(f"tricks.pack must be >= 1, got {self.pack}")
        if self.aux_weight < 0:
            raise ValueError(f"tricks.aux_weight must be >= 0, got {self.aux_weight}")
        if self.perceptual_weight < 0:
            raise ValueError(f"tricks.perceptual_weight must be >= 0, got {self.perceptual_weight}")
        if self.r1 < 0 or self.r1_every < 1:
            raise ValueError(f"tricks.r1 must be >= 0 and tricks.r1_every >= 1, got {self.r1}, {self.r1_every}")
        if self.perceptual_net not in ("classifier", "vgg16"):
            raise ValueError(f"tricks.perceptual_net must be classifier or vgg16, got {self.perceptual_net!r}")
        if self.feature_matching and self.unrolled_steps:
            raise ValueError("tricks.feature_matching and tricks.unrolled_steps exclude each other")


class GANLoss:
    """Base class.  ``d_steps`` is the number of D updates per G update (n_critic)."""

    d_steps: int = 1
    #: True when D outputs are logits of a probability (D/real, D/fake are then sigmoids).
    probabilistic: bool = True
    tricks: Tricks = Tricks()  # ``create`` sets the variant's own
    auxiliary: bool = False  # ACGAN: D has a classifier head trained on real and fake labels
    #: Fixed feature network for tricks.perceptual_weight: images -> (B, F) features.  The caller
    #: provides it (the train stage loads the data set's classifier or VGG16).
    perceptual_net: Callable[[torch.Tensor], torch.Tensor] | None = None

    @classmethod
    def create(cls, options: dict[str, Any], *, tricks: "Tricks | None" = None, auxiliary: bool = False,
               perceptual_net: Callable[[torch.Tensor], torch.Tensor] | None = None,
               what: str = "loss") -> "GANLoss":
        """The loss, complete: ``cls(**options)`` (the options of params.yaml's ``loss:``, checked
        against its signature), with the tricks any loss takes, ACGAN's auxiliary head and the
        perceptual term's network.  The one way a loss is made; nothing changes it afterwards."""
        loss = call_with_options(what, cls, {}, options)
        loss.tricks = tricks if tricks is not None else Tricks()
        loss.auxiliary, loss.perceptual_net = auxiliary, perceptual_net
        return loss

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
            return self._d_phase(G, D, ctx.batch(), getattr(ctx, "step", 0), ctx)
        if phase == "G":
            return self._g_phase(G, D, ctx)
        raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")

    def _d_phase(self, G, D, b: Batch, step: int = 0, ctx: Any = None) -> Stats:
        with torch.no_grad():
            fake = G(b.z, b.fake_labels)
        t = self.tricks
        lazy_r1 = t.r1 and (step + 1) % t.r1_every == 0  # the k-th, 2k-th ... step (logged where a log step falls)
        real = b.real.detach().requires_grad_(True) if lazy_r1 else b.real
        r, f = self._d(D, real, b.real_labels), self._d(D, fake, b.fake_labels)
        loss = self.d_objective(r["logits"], f["logits"])
        stats = {"loss/D": loss.detach(), "D/real": self._score(r["logits"].detach()),
                 "D/fake": self._score(f["logits"].detach())}
        penalty = self.d_penalty(D, b.real, fake, b.real_labels, b.fake_labels)
        if penalty is not None:
            stats["loss/D_penalty"] = penalty.detach()
            loss = loss + penalty
        if lazy_r1:
            # R1: gamma/2 * E ||grad_x D(x)||^2 on the real images (before augmentation, as
            # StyleGAN2-ADA), every r1_every-th step with the weight scaled by r1_every
            # one logit per input D judges (a multi-scale D: the mean of its scales'; a pack of m
            # samples is one input, so the expectation runs over packs)
            per_input = r["logits"].reshape(r["logits"].shape[0], -1).mean(1)
            (grad,) = torch.autograd.grad(per_input.sum(), real, create_graph=True)
            r1 = grad.pow(2).sum() / per_input.shape[0]
            stats["loss/D_r1"] = r1.detach()
            loss = loss + 0.5 * t.r1 * t.r1_every * r1
        if self.auxiliary:  # ACGAN: classify real and generated samples by their labels
            aux = F.cross_entropy(r["aux"], b.real_labels) + F.cross_entropy(f["aux"], b.fake_labels)
            stats["loss/D_aux"] = aux.detach()
            loss = loss + self.tricks.aux_weight * aux
        backward(ctx, loss)
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
                raise ValueError("tricks.perceptual_weight > 0 needs a feature network (made from tricks.perceptual_net)")
            with torch.no_grad():
                real_feats = self.perceptual_net(b.real)
            # ||E phi(x) - E phi(G(z))||^2 on a fixed network (perceptual feature matching)
            perc = (real_feats.mean(0) - self.perceptual_net(fake).mean(0)).pow(2).sum()
            stats["loss/G_perceptual"] = perc.detach()
            loss = loss + t.perceptual_weight * perc
        backward(ctx, loss)
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

    #: None for generation from noise; "paired" (needs input/target pairs) or "unpaired" for an
    #: image-to-image translation loss, whose G maps input images to target images.
    translation: str | None = None

    def state_dict(self) -> dict[str, torch.Tensor]:
        """State the loss keeps across steps (CycleGAN's image pools), saved in checkpoints so a
        resumed run continues bit for bit; empty for stateless losses."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise ValueError(f"{type(self).__name__} keeps no state, but the checkpoint has {sorted(state)}")


# Losses (params.yaml: loss: {name: NAME, option: value}): a GANLoss subclass, made by its
# ``create``; each module registers its losses beside their classes.
LOSSES: Registry[type[GANLoss]] = Registry("loss", ())
