"""The variant-agnostic training loop.

One *step* is one generator update preceded by ``loss.d_steps`` discriminator updates, each on
a fresh real batch.  The loop knows nothing about variants: the loss object decides objectives,
penalties and clipping.  All randomness comes from one seeded ``torch.Generator`` (data order,
noise) and torch's global RNG (dropout, penalty interpolation), and both are in
``state_dict()``, so a run resumed from a checkpoint continues bit for bit on the CPU.

Data-parallel training (``torchrun``, one process per GPU or CPU worker): when a
``torch.distributed`` process group is initialised, every rank draws the same global batch from
the same generator and trains on its own contiguous share; gradients are averaged with one
``all_reduce`` per network and update, the way stylegan2-ada-pytorch's loop does it.  The
``DistributedDataParallel`` wrapper is not used because a GAN step runs D several times before
one backward (real, fake, gradient penalty through ``autograd.grad``), which its reducer does
not support.  For layers without batch statistics the averaged gradient equals the one-process
gradient of the whole batch.
"""

from __future__ import annotations

import contextlib
import copy
import math
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from .data.base import to_model_range
from .losses import Batch
from .mapped import take_rows
from .networks import conditioning
from .networks.conditioning import balanced_labels
from .variants import GAN, memory_format

LogFn = Callable[[int, dict[str, float]], None]
# Mixed precision (train.amp): the autocast dtype of each setting.
AMP = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}
CheckpointFn = Callable[[int, dict[str, Any]], None]


MAX_SKIPPED_IN_A_ROW = 50  # mixed precision: this many skipped updates in a row is divergence


class DivergenceError(RuntimeError):
    """Training produced NaN/Inf; ``step`` is where it was seen."""

    def __init__(self, step: int, what: str):
        super().__init__(f"training diverged at step {step}: {what} is not finite")
        self.step = step
        self.what = what

    def __reduce__(self):  # picklable across worker processes (the default passes only the message)
        return (type(self), (self.step, self.what))


def _grad_norm(module: nn.Module) -> float:
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return 0.0
    return float(torch.nn.utils.get_total_norm(grads, 2.0))


def _world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _average_gradients(module: nn.Module, world: int) -> None:
    """All-reduce the gradients of ``module`` across ranks, averaged (one flat buffer)."""
    import torch.distributed as dist

    params = [p for p in module.parameters() if p.requires_grad]
    if not params:
        return
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.flatten() for p in params])
    dist.all_reduce(flat)
    flat.div_(world)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset:offset + n].view_as(p))
        offset += n


def _mean_pairwise_distance(x: torch.Tensor) -> float:
    flat = x.flatten(1).double()
    d = torch.cdist(flat, flat)
    n = flat.shape[0]
    return float(d.sum() / (n * (n - 1)))


class Trainer:
    """Holds networks, optimizers, RNG and step; ``run`` trains up to a number of steps."""

    def __init__(self, gan: GAN, data: torch.Tensor | np.ndarray, *, batch_size: int, seed: int,
                 device: str | torch.device = "cpu", conditions: torch.Tensor | None = None,
                 source: torch.Tensor | None = None, amp: str = "off"):
        """``data``: the training images (the target domain of a translation variant), a tensor or
        an array (a memory-mapped one is read batch by batch as batches are drawn, see
        ``mapped.take_rows``);
        ``conditions``: what a conditional G is given per sample: class labels (N,), or for a
        multi-input variant the (N, columns) rows of ``conditioning.table``;
        ``source``: a translation variant's input images (paired: source[i] belongs to data[i]);
        ``amp``: mixed precision, off | bf16 | fp16 (``AMP``)."""
        if amp not in AMP:
            raise ValueError(f"train.amp must be one of {', '.join(AMP)}, got {amp!r}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if data.shape[0] < batch_size:
            raise ValueError(f"the training set has {data.shape[0]} samples, fewer than the batch size "
                             f"{batch_size}; lower train.batch_size")
        if (gan.n_classes or gan.conditioned) and conditions is None:
            raise ValueError(f"variant {gan.name!r} is conditional and needs " +
                             ("the rows of its inputs (gan_models.conditioning.table)" if gan.conditioned
                              else "class labels"))
        self.translation = gan.loss.translation
        if self.translation and source is None:
            raise ValueError(f"variant {gan.name!r} translates images and needs the input domain (source)")
        if self.translation == "paired" and source.shape[0] != data.shape[0]:
            raise ValueError(f"paired translation needs one input per target, got {source.shape[0]} inputs "
                             f"and {data.shape[0]} targets")
        self.source = source if self.translation else None
        self.rank, self.world = _world()
        if batch_size % self.world:
            raise ValueError(f"the batch size {batch_size} must be a multiple of the number of processes "
                             f"{self.world}: each trains on an equal share")
        self.gan = gan
        self.conditions = conditions if gan.n_classes or gan.conditioned else None
        if gan.conditioned:  # standardisation of the inputs and G's bank of real condition rows
            if conditions.shape[0] != data.shape[0]:
                raise ValueError(f"{conditions.shape[0]} condition rows for {data.shape[0]} training samples")
            conditioning.fit(gan.G, [gan.G.encoder, gan.D.encoder], conditions, seed)
        # EMA of G's weights (sampling uses it when kept): a copy updated after every G step.
        self.G_ema = copy.deepcopy(gan.G).eval().requires_grad_(False) if gan.spec.ema > 0 else None
        self.device = torch.device(device)
        self.memory_format = memory_format("image" if data.ndim == 4 else "points")
        self.G = gan.G.to(self.device, memory_format=self.memory_format)
        self.D = gan.D.to(self.device, memory_format=self.memory_format)
        if self.G_ema is not None:
            self.G_ema.to(self.device, memory_format=self.memory_format)
        self.loss = gan.loss
        if self.world > 1:  # identical seeds give identical weights already; make sure of it
            import torch.distributed as dist

            for t in [*self.G.state_dict().values(), *self.D.state_dict().values()]:
                dist.broadcast(t, src=0)
        self.opt_g, self.opt_d = gan.make_optimizers()
        self.data = data
        self.batch_size = batch_size  # D's minibatch: samples, or packs of `pack` samples (PacGAN)
        # PacGAN's minibatch counts packs (Lin et al. 2018; their code draws batch_size x m samples),
        # so a packed D sees as many inputs per step as an unpacked one.
        self.pack = gan.loss.tricks.pack
        self.step = 0
        self._progressive: list[nn.Module] | None = None  # modules with set_progress, found on first use
        # Constant, then linear decay to 0 over the last `lr_decay` share of the steps (CycleGAN).
        self.lr_decay = float(gan.spec.lr_decay)
        self.base_lr = [[g["lr"] for g in opt.param_groups] for opt in (self.opt_g, self.opt_d)]
        self.rng = torch.Generator().manual_seed(seed)  # data order and noise
        # Mixed precision: the loss's forward and backward under autocast in ``amp``'s dtype; fp16
        # with a gradient scaler per network (each updated after its own optimizer's step, as the
        # critic may step several times per G step).  A step whose gradients are not finite is
        # skipped (fp16: by the scaler; bf16: here) and counted.
        self.amp = amp
        self.scalers = ({phase: torch.amp.GradScaler(self.device.type) for phase in ("D", "G")}
                        if amp == "fp16" else None)
        self._scaler = None  # the scaler of the phase in progress (``scale``)
        self.skipped_steps = 0
        self._skipped_in_a_row: dict[str, int] = {}  # per network
        # Fixed probes for the diagnostics, from their own generator so they consume nothing.
        probe = torch.Generator().manual_seed(seed + 1)
        # G's fixed probe input: noise, or (below) input-domain images for a translation variant
        self.probe_input = torch.randn(64, gan.z_dim, generator=probe).to(self.device)
        probe_y = self.requested(64)
        self.probe_y = probe_y.to(self.device) if probe_y is not None else None
        n_probe = min(64, data.shape[0])
        self.probe_real = to_model_range(self._take(torch.randperm(data.shape[0], generator=probe)[:n_probe]))
        self.real_diversity = _mean_pairwise_distance(self.probe_real)
        if self.translation:
            pick = torch.randperm(self.source.shape[0], generator=probe)[:64]
            self.probe_input = to_model_range(self.source[pick]).to(self.device).contiguous(
                memory_format=self.memory_format)

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(),
                 "G_ema": self.G_ema.state_dict() if self.G_ema is not None else None,
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "step": self.step,
                 "rng": {"data": self.rng.get_state(), "torch": torch.get_rng_state()}}
        loss_state = self.loss.state_dict()
        if loss_state:  # only where a loss keeps state (image pools): other checkpoints are unchanged
            state["loss"] = loss_state
        if self.amp != "off":  # likewise: a float32 run's checkpoints are what they always were
            state["amp"] = {"skipped_steps": self.skipped_steps,
                            "scalers": {k: s.state_dict() for k, s in (self.scalers or {}).items()}}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.G_ema is not None:
            self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.loss.load_state_dict(state.get("loss", {}))
        if self.amp != "off" and "amp" in state:
            self.skipped_steps = int(state["amp"]["skipped_steps"])
            for k, s in (self.scalers or {}).items():
                s.load_state_dict(state["amp"]["scalers"][k])
        self.step = int(state["step"])
        self.rng.set_state(state["rng"]["data"])
        torch.set_rng_state(state["rng"]["torch"])

    # -- one step ----------------------------------------------------------------------------
    def batch(self) -> Batch:
        """A fresh real batch (with its labels), noise, and the labels G is asked to draw:
        ``batch_size * pack`` samples of each.  With several processes, every one draws the same
        global batch and keeps its own share."""
        n = self.batch_size * self.pack
        idx = torch.randint(self.data.shape[0], (n,), generator=self.rng)
        z = torch.randn(n, self.gan.z_dim, generator=self.rng)
        if self.world > 1:
            share = n // self.world  # a whole number of packs: batch_size is a multiple of world
            idx = idx[self.rank * share:(self.rank + 1) * share]
            z = z[self.rank * share:(self.rank + 1) * share]
        # uint8 batches cross to the device as they are (a quarter of float32's bytes), then scaled
        real = to_model_range(self._take(idx).to(self.device)).contiguous(memory_format=self.memory_format)
        z = z.to(self.device)
        y = self.conditions[idx].to(self.device) if self.conditions is not None else None
        source = None
        if self.translation:  # paired: the targets' own inputs; unpaired: an independent draw
            src_idx = idx if self.translation == "paired" else torch.randint(self.source.shape[0], (n,), generator=self.rng)
            if self.world > 1 and self.translation != "paired":
                src_idx = src_idx[self.rank * share:(self.rank + 1) * share]
            source = to_model_range(self.source[src_idx]).to(self.device).contiguous(memory_format=self.memory_format)
        return Batch(real, y, z, y, source)

    def _take(self, idx: torch.Tensor) -> torch.Tensor:
        """The training images at ``idx``, a CPU tensor."""
        if isinstance(self.data, np.ndarray):
            return torch.from_numpy(take_rows(self.data, idx.numpy()))
        return self.data[idx]

    def _set_progress(self, steps: int) -> None:
        """Networks that change with training progress (progressive growing) get step / total."""
        if self._progressive is None:
            nets = [m for m in (self.G, self.D, self.G_ema) if m is not None]
            self._progressive = [sub for m in nets for sub in m.modules() if hasattr(sub, "set_progress")]
        p = min(1.0, self.step / max(1, steps))
        for sub in self._progressive:
            sub.set_progress(p)
        if self.lr_decay:
            start = steps * (1.0 - self.lr_decay)
            factor = 1.0 if self.step < start else max(0.0, (steps - self.step) / max(1e-12, steps - start))
            for opt, base in zip((self.opt_g, self.opt_d), self.base_lr):
                for group, lr in zip(opt.param_groups, base):
                    group["lr"] = lr * factor

    def ema_beta(self) -> float:
        """The EMA decay of the update after step ``self.step``: ``ema``, or with ``ema_rampup``
        (StyleGAN2's) the decay whose half-life is ``ema_rampup * (step + 1)`` steps, capped at
        the half-life of ``ema``: early weights, far from the later ones, leave the average fast."""
        beta = self.gan.spec.ema
        rampup = float(self.gan.spec.ema_rampup)
        if rampup:
            half_life = min(math.log(0.5) / math.log(beta), rampup * (self.step + 1))  # in steps
            beta = 0.5 ** (1.0 / half_life)
        return beta

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = self.ema_beta()
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p, 1.0 - beta)  # pe = beta * pe + (1 - beta) * p
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    @torch.no_grad()
    def recalibrate_ema_batchnorm(self, n: int = 1024, batch_size: int = 256) -> None:
        """Recompute the BatchNorm statistics of the EMA generator for its own weights.

        The EMA averages G's weights, but its BatchNorm buffers are G's running statistics, which
        belong to G's current weights: sampling in eval mode then normalises with the wrong mean and
        variance (the SWA paper's point; torch.optim.swa_utils.update_bn).  Before a checkpoint the
        EMA generator sees ``n`` samples of fixed noise in training mode with cumulative
        statistics.  Only the saved buffers change: the next EMA update copies G's buffers again,
        so training and a resumed run are unaffected, and the noise has its own fixed generator."""
        norms = [m for m in self.G_ema.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        if not norms:
            return
        gen = torch.Generator().manual_seed(20231)
        saved = [(m.momentum, m.num_batches_tracked.clone()) for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        self.G_ema.train()
        with torch.random.fork_rng(devices=[]):  # dropout in G draws from the global RNG: leave it as it was
            for i in range(0, n, batch_size):
                k = min(batch_size, n - i)
                y = self.requested(k)
                self.G_ema(torch.randn(k, self.gan.z_dim, generator=gen).to(self.device),
                           None if y is None else y.to(self.device))
        self.G_ema.eval()
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            m.num_batches_tracked.copy_(tracked)

    def requested(self, n: int) -> torch.Tensor | None:
        """What G is asked to draw for fixed probes: classes 0..K-1 in turn, or for a multi-input
        variant the first ``n`` rows of G's bank of real conditions."""
        if self.gan.conditioned:
            return conditioning.conditions_for(self.gan.G, n)
        return balanced_labels(n, self.gan.n_classes)

    def train_step(self, measure: bool = False) -> dict[str, float]:
        """One G update after ``loss.d_steps`` D updates; statistics only when ``measure``."""
        G, D, loss = self.G, self.D, self.loss
        G.train()
        D.train()
        skipped_before = self.skipped_steps
        stats: dict[str, torch.Tensor | float] = {}
        D.requires_grad_(True)
        for i in range(loss.d_steps):
            self.opt_d.zero_grad(set_to_none=True)
            with self._precision("D"):
                stats.update(loss.accumulate_gradients("D", G, D, self))  # the last critic step's are kept
            if self.world > 1:
                _average_gradients(D, self.world)
            self._optimizer_step(self.opt_d, D, "D", stats if measure and i == loss.d_steps - 1 else None)
            loss.after_step("D", G, D)
        D.requires_grad_(False)  # G's step needs gradients through D, not for D's weights
        self.opt_g.zero_grad(set_to_none=True)
        with self._precision("G"):
            stats.update(loss.accumulate_gradients("G", G, D, self))
        if self.world > 1:
            _average_gradients(G, self.world)
        self._optimizer_step(self.opt_g, G, "G", stats if measure else None)
        loss.after_step("G", G, D)
        if self.G_ema is not None:
            self._update_ema()
        D.requires_grad_(True)
        self.step += 1
        if not measure:
            return {}
        out = {k: float(v) for k, v in stats.items()}
        out["diversity/fake_over_real"] = self._diversity()
        if self.amp != "off":
            if self.skipped_steps > skipped_before:  # a skipped step's losses may be inf: the count says so
                out = {k: v for k, v in out.items() if math.isfinite(v)}
            out["amp/skipped_steps"] = float(self.skipped_steps)
        for k, v in out.items():
            if not math.isfinite(v):
                raise DivergenceError(self.step, k)
        return out

    def _precision(self, phase: str):
        """The autocast region of a phase under mixed precision (its scaler for ``scale``)."""
        if self.amp == "off":
            return contextlib.nullcontext()
        self._scaler = self.scalers[phase] if self.scalers else None
        return torch.autocast(self.device.type, dtype=AMP[self.amp])

    def scale(self, loss: torch.Tensor) -> torch.Tensor:
        """The loss a phase calls ``backward`` on (``gan_models.losses.backward``): scaled by the
        phase's gradient scaler under fp16, else as it is."""
        return self._scaler.scale(loss) if self._scaler is not None else loss

    def _optimizer_step(self, opt: torch.optim.Optimizer, net: nn.Module, phase: str,
                        stats: dict | None) -> None:
        """``opt.step()``; under mixed precision only when the gradients are finite (else the step is
        skipped and counted).  ``stats``: record the gradient norm there (unscaled)."""
        scaler = self.scalers[phase] if self.scalers else None
        if scaler is not None:
            scaler.unscale_(opt)  # true gradients, for the norm and the finiteness check
        if stats is not None:
            stats[f"grad_norm/{phase}"] = _grad_norm(net)
        if scaler is not None:
            before = scaler.get_scale()
            scaler.step(opt)  # skips the step when unscale_ found inf / NaN
            scaler.update()
            skipped = scaler.get_scale() < before
        elif self.amp != "off":
            grads = [p.grad.isfinite().all() for p in net.parameters() if p.grad is not None]
            skipped = bool(grads) and not bool(torch.stack(grads).all())  # one device sync
            if not skipped:
                opt.step()
        else:
            opt.step()
            skipped = False
        self._scaler = None
        self.skipped_steps += int(skipped)
        # A few skipped updates are what a gradient scaler does; updates skipped one after another
        # without end are a diverged run, which would otherwise finish with frozen weights.
        self._skipped_in_a_row[phase] = self._skipped_in_a_row.get(phase, 0) + 1 if skipped else 0
        if self._skipped_in_a_row[phase] >= MAX_SKIPPED_IN_A_ROW:
            raise DivergenceError(self.step, f"the {phase} gradient ({MAX_SKIPPED_IN_A_ROW} updates in a row "
                                             "skipped under mixed precision)")

    @torch.no_grad()
    def _diversity(self) -> float:
        """Mean pairwise distance of samples from fixed noise / that of real data (-> 0: collapse)."""
        self.G.eval()
        fake = self.G(self.probe_input, self.probe_y).cpu()
        self.G.train()
        return _mean_pairwise_distance(fake) / max(self.real_diversity, 1e-12)

    # -- the loop ----------------------------------------------------------------------------
    def run(self, steps: int, *, log_every: int = 10, checkpoint_every: int = 0,
            on_log: LogFn | None = None, on_checkpoint: CheckpointFn | None = None,
            progress: bool = True, desc: str | None = None, position: int | None = None) -> None:
        """Train until ``self.step == steps``, calling ``on_log`` every ``log_every`` steps and
        ``on_checkpoint`` every ``checkpoint_every`` steps and at the end."""
        from .progress import progress as progress_bar

        bar = progress_bar(steps, desc or self.gan.name, "step", enabled=progress, initial=self.step,
                           position=position)
        try:
            while self.step < steps:
                self._set_progress(steps)
                measure = log_every > 0 and (self.step + 1) % log_every == 0
                stats = self.train_step(measure=measure)
                bar.update(1)
                if measure:
                    bar.set_postfix({label: f"{stats[k]:.3f}" for label, k in
                                     (("D(x)", "D/real"), ("D(G(z))", "D/fake"), ("lossG", "loss/G")) if k in stats},
                                    refresh=False)
                    if on_log is not None:
                        on_log(self.step, stats)
                last = self.step == steps
                if on_checkpoint is not None and ((checkpoint_every and self.step % checkpoint_every == 0) or last):
                    if self.G_ema is not None and not self.translation:
                        self.recalibrate_ema_batchnorm()
                    on_checkpoint(self.step, self.state_dict())
        finally:
            bar.close()


def sample(G: nn.Module, n: int, z_dim: int, seed: int, batch_size: int = 500,
           device: str | torch.device | None = None) -> torch.Tensor:
    """``n`` samples from ``G`` in eval mode with noise from ``seed``; float in model range, on CPU.
    A conditional G draws every class equally often, a multi-input one its bank's conditions
    (``conditioning.conditions_for``).  The noise is drawn on the CPU whatever the device, so a
    seed means the same noise everywhere."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, z_dim, generator=gen)
    return generate(G, z, conditioning.conditions_for(G, n), batch_size=batch_size, device=device)


@torch.no_grad()
def generate(G: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch_size: int = 500,
             device: str | torch.device | None = None) -> torch.Tensor:
    """``G``'s outputs for inputs ``z`` (and conditions ``y``), batch by batch on ``device`` (default:
    where G's weights are), back on the CPU."""
    device = device if device is not None else next(G.parameters(), torch.empty(0)).device
    was_training = G.training
    G.eval()
    try:
        out = [G(z[i:i + batch_size].to(device), None if y is None else y[i:i + batch_size].to(device)).cpu()
               for i in range(0, z.shape[0], batch_size)]
    finally:
        G.train(was_training)
    return torch.cat(out)
