"""Image-to-image translation (pix2pix, CycleGAN): the objectives live here, the networks in
gan_models.networks.translation; the training loop is the same as for every other variant."""

from __future__ import annotations

import torch

from .adversarial import BCELoss, LSGANLoss
from .base import LOSSES, GANLoss, backward


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
        if self.images is not None and self.images.device != batch.device:
            self.images = self.images.to(batch.device)  # loaded from a checkpoint onto the CPU
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
            backward(ctx, loss)
            return {"loss/D": loss.detach(), "D/real": self._score(r.detach()), "D/fake": self._score(f.detach())}
        if phase != "G":
            raise ValueError(f"unknown phase {phase!r}; phases are 'D' and 'G'")
        fake = G(b.source)
        out = D(torch.cat([b.source, fake], 1))
        adv, l1 = self.g_objective(out), _l1(fake, b.real)
        loss = adv + self.l1_weight * l1
        backward(ctx, loss)
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
            backward(ctx, loss_b + loss_a)
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
        backward(ctx, loss)
        stats["loss/G"] = loss.detach()
        return stats

    def state_dict(self):
        return {f"pool_{k}/{n}": v for k, pool in (("a", self.pool_a), ("b", self.pool_b))
                for n, v in pool.state_dict().items()}

    def load_state_dict(self, state):
        for k, pool in (("a", self.pool_a), ("b", self.pool_b)):
            pool.load_state_dict({n.split("/", 1)[1]: v for n, v in state.items() if n.startswith(f"pool_{k}/")})


LOSSES.register("pix2pix", Pix2PixLoss, "paired translation: adversarial on (input, output) pairs + "
                "l1_weight * L1 to the target (Isola et al. 2017); options: l1_weight, gan bce|lsgan")
LOSSES.register("cyclegan", CycleGANLoss, "unpaired translation: least squares, cycle consistency "
                "cycle_weight, identity identity_weight * cycle_weight, image pools of pool_size (Zhu et al. 2017)")
