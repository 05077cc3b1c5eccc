"""Training throughput: the project's loop against a plain PyTorch loop on the same networks.

The plain loop is written the way pytorch/examples' dcgan trains: BCE on sigmoid outputs via
logits, one D step on real + fake, one G step, Adam, batches drawn from an in-memory tensor.
Both train the *same* freshly built networks (same seed, batch size, optimizer, data) for the
same number of steps; runs alternate A/B.  Ratio > 1 means the project's loop is faster.

    python benchmarks/train_throughput.py [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gan_models import variants as V  # noqa: E402
from gan_models.data import to_model_range  # noqa: E402
from gan_models.training import Trainer  # noqa: E402

CASES = [  # name, overrides, image size
    ("mlp", {}, 28),
    ("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}}, 28),
    ("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}}, 64),
    ("wgan_gp", {"generator": {"width": 32}, "discriminator": {"width": 32}}, 28),
]


def _build(name, overrides, size, seed=0):
    torch.manual_seed(seed)
    return V.build(V.resolve(name, overrides), V.DataInfo("image", (1, size, size), 10))


def plain_loop(gan, data, steps, batch_size, seed=0):
    """A hand-written loop for the same objective (BCE or WGAN-GP), no logging, no checkpoints."""
    G, D = gan.G, gan.D
    opt_g, opt_d = gan.make_optimizers()
    gen = torch.Generator().manual_seed(seed)
    wgan = gan.spec.loss.name == "wgan_gp"
    n_critic = gan.spec.loss.options.get("n_critic", 5) if wgan else 1
    for _ in range(steps):
        for _ in range(n_critic):
            real = to_model_range(data[torch.randint(len(data), (batch_size,), generator=gen)])
            z = torch.randn(batch_size, gan.z_dim, generator=gen)
            opt_d.zero_grad()
            with torch.no_grad():
                fake = G(z)
            if wgan:
                a = torch.rand(batch_size, 1, 1, 1)
                xh = (a * real + (1 - a) * fake).requires_grad_(True)
                (g,) = torch.autograd.grad(D(xh).sum(), xh, create_graph=True)
                loss = D(fake).mean() - D(real).mean() + 10 * ((g.flatten(1).norm(dim=1) - 1) ** 2).mean()
            else:
                loss = F.softplus(-D(real)).mean() + F.softplus(D(fake)).mean()
            loss.backward()
            opt_d.step()
        opt_g.zero_grad()
        z = torch.randn(batch_size, gan.z_dim, generator=gen)
        out = D(G(z))
        (-out.mean() if wgan else F.softplus(-out).mean()).backward()
        opt_g.step()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    args = ap.parse_args()
    reps = 2 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, median of {reps}\n")
    print("| variant | size | steps | plain loop steps/s | project loop steps/s | ratio (project / plain) |")
    print("|---|---|---|---|---|---|")
    for name, overrides, size in CASES:
        if args.only and name not in args.only.split(","):
            continue
        steps = {"mlp": 400, "dcgan": 60 if size == 28 else 20, "wgan_gp": 50}[name] // (4 if args.quick else 1)
        data = torch.randint(0, 256, (2000, 1, size, size), dtype=torch.uint8)
        plain, ours = [], []
        for _ in range(reps):  # interleaved A/B, fresh networks each time
            gan = _build(name, overrides, size)
            plain_loop(gan, data, 3, args.batch_size)  # warm-up
            t = time.perf_counter()
            plain_loop(gan, data, steps, args.batch_size)
            plain.append(steps / (time.perf_counter() - t))
            gan = _build(name, overrides, size)
            tr = Trainer(gan, data, batch_size=args.batch_size, seed=0)
            tr.run(3, log_every=0, progress=False)  # warm-up
            t = time.perf_counter()
            tr.run(3 + steps, log_every=10, progress=False)
            ours.append(steps / (time.perf_counter() - t))
        p, o = statistics.median(plain), statistics.median(ours)
        print(f"| {name} | {size} | {steps} | {p:.1f} | {o:.1f} | {o / p:.2f} |")


if __name__ == "__main__":
    main()
