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
    # Translation: input-domain images (model range).  Paired data: source[i] is the input whose
    # target is real[i]; unpaired data: an independent draw from the input domain.
    source: torch.Tensor | None = None


class Context(Protocol):
    step: int  # G updates done so far (lazy regularisation counts them)

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
    r1: float = 0.0  # gamma of the R1 penalty gamma/2 * E ||grad_x D(x)||^2 on real data (Mescheder et al.
    #   2018; StyleGAN2); 0 = off.  Best with a D without BatchNorm
    r1_every: int = 1  # lazy regularisation: the penalty every k-th step, weighted by k (StyleGAN2: 16)

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
        if self.r1 < 0 or self.r1_every < 1:
            raise ValueError(f"tricks.r1 must be >= 0 and tricks.r1_every >= 1, got {self.r1}, {self.r1_every}")
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
            return self._d_phase(G, D, ctx.batch(), getattr(ctx, "step", 0))
        if phase == "G":
            return self._g_phase(G, D, ctx)
        raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")

    def _d_phase(self, G, D, b: Batch, step: int = 0) -> Stats:
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


# ----------------------------------------------------------------------------------------------
# Image-to-image translation (pix2pix, CycleGAN): the objectives live here, the networks in
# gan_models.translation; the training loop is the same as for every other variant.


def _adversarial(name: str) -> GANLoss:
    if name == "bce":
        return BCELoss()
    if name == "lsgan":
        return LSGANLoss()
    raise ValueError(f"loss.gan must be bce or lsgan, got {name!r}")


class ImagePool:
    """A buffer of past generated images (Shrivastava et al. 2017; CycleGAN's ``pool_size`` 50):
    D is trained on a mix of the newest fakes and older ones, which damps oscillation.

    ``query`` takes a batch and returns one of the same size: while the buffer is not full each
    image is stored and returned as it is; once full, each image is, with probability 1/2, swapped
    for a random stored one (the stored one is returned, the new one takes its place), else
    returned as it is.  Random draws come from ``generator`` (default: torch's global RNG, which
    the trainer seeds and checkpoints); the buffer is in ``state_dict``."""

    def __init__(self, size: int, generator: torch.Generator | None = None):
        if size < 0:
            raise ValueError(f"loss.pool_size must be >= 0 (0 = no pool), got {size}")
        self.size = size
        self.generator = generator
        self.images: torch.Tensor | None = None  # (n stored, C, H, W), n <= size

    @torch.no_grad()
    def query(self, batch: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return batch
        out = []
        for img in batch.detach():
            n = 0 if self.images is None else self.images.shape[0]
            if n < self.size:
                self.images = img[None].clone() if self.images is None else torch.cat([self.images, img[None]])
                out.append(img)
            elif float(torch.rand((), generator=self.generator)) < 0.5:
                i = int(torch.randint(0, self.size, (), generator=self.generator))
                out.append(self.images[i].clone())
                self.images[i] = img
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {} if self.images is None else {"images": self.images.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.images = state["images"].clone() if "images" in state else None


def _l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).abs().mean()


class Pix2PixLoss(GANLoss):
    """pix2pix (Isola et al. 2017): a conditional GAN on (input, output) pairs plus lambda * L1.

    D judges the input and an image together (``cat([source, image], channels)``): real pairs
    (source, target) against (source, G(source)).  D's loss is halved, as in the paper's code
    ("slows down the rate at which D learns relative to G").  G minimises the adversarial term
    plus ``l1_weight`` * mean |G(source) - target| (lambda = 100 in the paper).  ``gan`` is the
    adversarial objective: bce (the paper's "vanilla" GAN) or lsgan."""

    translation = "paired"

    def __init__(self, l1_weight: float = 100.0, gan: str = "bce"):
        if l1_weight < 0:
            raise ValueError(f"loss.l1_weight must be >= 0, got {l1_weight}")
        self.adv = _adversarial(gan)
        self.probabilistic = self.adv.probabilistic
        self.l1_weight = l1_weight

    def d_objective(self, real_out, fake_out):
        return 0.5 * self.adv.d_objective(real_out, fake_out)

    def g_objective(self, fake_out):
        return self.adv.g_objective(fake_out)

    def accumulate_gradients(self, phase, G, D, ctx):
        b = ctx.batch()
        if phase == "D":
            with torch.no_grad():
                fake = G(b.source)
            r, f = D(torch.cat([b.source, b.real], 1)), D(torch.cat([b.source, fake], 1))
            loss = self.d_objective(r, f)
            loss.backward()
            return {"loss/D": loss.detach(), "D/real": self._score(r.detach()), "D/fake": self._score(f.detach())}
        if phase != "G":
            raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")
        fake = G(b.source)
        out = D(torch.cat([b.source, fake], 1))
        adv, l1 = self.g_objective(out), _l1(fake, b.real)
        loss = adv + self.l1_weight * l1
        loss.backward()
        return {"loss/G": loss.detach(), "loss/G_adv": adv.detach(), "loss/G_L1": l1.detach(),
                "D/fake_G": self._score(out.detach())}


class CycleGANLoss(GANLoss):
    """CycleGAN (Zhu et al. 2017) on a ``TranslatorPair`` G (``ab``: A -> B, ``ba``: B -> A) and a
    ``DiscriminatorPair`` D (``b`` judges domain B, ``a`` domain A), with the paper code's terms:

    * D: least squares, 0.5 * (mean (D(real) - 1)^2 + mean D(fake)^2) for each of D_B and D_A,
      the fakes drawn through an ``ImagePool`` of ``pool_size`` past fakes per discriminator;
    * G: mean (D_B(G_ab(a)) - 1)^2 + mean (D_A(G_ba(b)) - 1)^2
      + ``cycle_weight`` * (|G_ba(G_ab(a)) - a|_1 + |G_ab(G_ba(b)) - b|_1)       (lambda = 10)
      + ``cycle_weight * identity_weight`` * (|G_ab(b) - b|_1 + |G_ba(a) - a|_1)   (0.5 * lambda),
      each |.|_1 a mean over pixels.  The identity term needs both domains to have the same
      number of channels (set identity_weight 0 otherwise)."""

    translation = "unpaired"
    probabilistic = False

    def __init__(self, cycle_weight: float = 10.0, identity_weight: float = 0.5, pool_size: int = 50):
        if cycle_weight < 0 or identity_weight < 0:
            raise ValueError(f"loss.cycle_weight and loss.identity_weight must be >= 0, got {cycle_weight}, "
                             f"{identity_weight}")
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.pool_a, self.pool_b = ImagePool(pool_size), ImagePool(pool_size)

    def d_objective(self, real_out, fake_out):
        return 0.5 * ((real_out - 1).pow(2).mean() + fake_out.pow(2).mean())

    def g_objective(self, fake_out):
        return (fake_out - 1).pow(2).mean()

    def cycle_terms(self, G, a: torch.Tensor, b: torch.Tensor) -> dict[str, torch.Tensor]:
        """The translations and the cycle and identity terms (unweighted) for real ``a``, ``b``."""
        fake_b, fake_a = G.ab(a), G.ba(b)
        out = {"fake_b": fake_b, "fake_a": fake_a,
               "cycle": _l1(G.ba(fake_b), a) + _l1(G.ab(fake_a), b)}
        if self.identity_weight:
            out["identity"] = _l1(G.ab(b), b) + _l1(G.ba(a), a)
        return out

    def accumulate_gradients(self, phase, G, D, ctx):
        batch = ctx.batch()
        a, b = batch.source, batch.real
        if phase == "D":
            with torch.no_grad():
                fake_b, fake_a = self.pool_b.query(G.ab(a)), self.pool_a.query(G.ba(b))
            rb, fb, ra, fa = D.b(b), D.b(fake_b), D.a(a), D.a(fake_a)
            loss_b, loss_a = self.d_objective(rb, fb), self.d_objective(ra, fa)
            (loss_b + loss_a).backward()
            return {"loss/D": loss_b.detach(), "loss/D_A": loss_a.detach(), "D/real": self._score(rb.detach()),
                    "D/fake": self._score(fb.detach()), "D_A/real": self._score(ra.detach()),
                    "D_A/fake": self._score(fa.detach())}
        if phase != "G":
            raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")
        t = self.cycle_terms(G, a, b)
        ob, oa = D.b(t["fake_b"]), D.a(t["fake_a"])
        adv = self.g_objective(ob) + self.g_objective(oa)
        loss = adv + self.cycle_weight * t["cycle"]
        stats = {"loss/G_adv": adv.detach(), "loss/G_cycle": t["cycle"].detach(), "D/fake_G": self._score(ob.detach())}
        if "identity" in t:
            loss = loss + self.cycle_weight * self.identity_weight * t["identity"]
            stats["loss/G_identity"] = t["identity"].detach()
        loss.backward()
        stats["loss/G"] = loss.detach()
        return stats

    def state_dict(self):
        return {f"pool_{k}/{n}": v for k, pool in (("a", self.pool_a), ("b", self.pool_b))
                for n, v in pool.state_dict().items()}

    def load_state_dict(self, state):
        for k, pool in (("a", self.pool_a), ("b", self.pool_b)):
            pool.load_state_dict({n.split("/", 1)[1]: v for n, v in state.items() if n.startswith(f"pool_{k}/")})


GANLoss.tricks = Tricks()
