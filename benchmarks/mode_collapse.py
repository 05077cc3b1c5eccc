"""The mode-collapse study: vanilla GAN against the anti-collapse variants on the 2D mixtures.

Protocol after PacGAN (Lin et al. 2018, Table 1) / VEEGAN: every variant uses one shared MLP
architecture and step budget; after training, 2,500 samples are drawn and scored with
``gan_models.metrics.mode_metrics`` (modes covered: modes with at least one sample within 3 std;
high-quality samples: share within 3 std of the nearest mode; reverse KL of the mode histogram
to uniform).  Mean and standard error over seeds.

    python benchmarks/mode_collapse.py                  # 5 seeds, both data sets -> BENCHMARKS.md table
    python benchmarks/mode_collapse.py --quick          # 2 seeds, fewer steps
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ["mlp", "unrolled", "pacgan", "minibatch_disc", "wgan_gp"]
# One architecture for all: PacGAN's 2D setting scaled down to fit a 2-core CPU (z of 2 dims,
# G 3 x 256 instead of 4 x 400, D 2 x 256 instead of 3 x 200 maxout).
SHARED = {"z_dim": 2, "generator": {"arch": "mlp", "hidden": [256, 256, 256]},
          "discriminator": {"arch": "mlp", "hidden": [256, 256]},
          "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}
# PacGAN's own 2D setting (fjxmlzn/PacGAN, synthetic_data_experiments/2DGrid_GAN&PacGAN/config.py):
# G 4 x 400 with BatchNorm + ReLU, D 3 x 200 maxout units of 5 pieces, weights N(0, 0.02), zero
# biases, Adam lr 1e-4 with beta1 0.8, batch 100, 2-d Gaussian noise; it trains 400 epochs of
# 1,000 batches (400,000 steps).
PAPER = {"z_dim": 2, "generator": {"arch": "mlp", "hidden": [400] * 4, "batchnorm": True, "slope": 0.0},
         "discriminator": {"arch": "mlp", "hidden": [200] * 3, "maxout": 5},
         "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.8, 0.999]}
PUBLISHED = {  # PacGAN Table 1 (2D-grid, 25 modes): modes, % high-quality, reverse KL
    ("grid", "mlp"): "17.3 / 94.8% / 0.70 (GAN)", ("grid", "pacgan"): "23.8 / 91.3% / 0.13 (PacGAN2)",
    ("ring", "mlp"): "6.3 / 98.2% / 0.45 (GAN)", ("ring", "pacgan"): "7.9 / 95.6% / 0.07 (PacGAN2)",
}


def run_one(dataset: str, variant: str, seed: int, steps: int, batch_size: int, protocol: str = "small") -> dict:
    import torch

    torch.set_num_threads(1)
    from gan_models import data as D
    from gan_models import metrics as M
    from gan_models import variants as V
    from gan_models.training import Trainer, sample

    raw = D.DATASETS.get(dataset)(n_points=100_000, seed=seed)
    centers, std = D.mixture_centers(dataset)
    shared = PAPER if protocol == "paper" else SHARED
    overrides = dict(shared)
    preset = V.resolve_spec(variant)
    if variant == "minibatch_disc":
        overrides["discriminator"] = {**shared["discriminator"], "minibatch_features": 16}
    if variant == "wgan_gp":
        overrides.update(betas=[0.5, 0.9])  # WGAN-GP's own loss and n_critic, same networks
    spec = V.resolve_spec(variant, {**overrides, "loss": preset["loss"], "tricks": preset["tricks"]})
    torch.manual_seed(seed)
    gan = V.build(variant, spec, V.DataInfo("points", (2,), len(centers)))
    if protocol == "paper":  # PacGAN's initialisation
        for m in [*gan.G.modules(), *gan.D.modules()]:
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0.0, 0.02)
                torch.nn.init.zeros_(m.bias)
    tr = Trainer(gan, torch.from_numpy(raw.x), batch_size=batch_size, seed=seed)
    t0 = time.time()
    tr.run(steps, log_every=0, progress=False)
    pts = sample(gan.G, 2500, gan.z_dim, seed=10_000 + seed).numpy()
    out = M.mode_metrics(pts, centers, std)
    out.update(dataset=dataset, variant=variant, seed=seed, seconds=round(time.time() - t0, 1), protocol=protocol,
               steps=steps)
    return out


def summarize(rows: list[dict], n_modes: dict[str, int]) -> str:
    lines = ["| data | variant | modes covered | high-quality samples | reverse KL | published (PacGAN Table 1) |",
             "|---|---|---|---|---|---|"]
    for ds in ("ring", "grid"):
        for v in VARIANTS:
            rs = [r for r in rows if r["dataset"] == ds and r["variant"] == v]
            if not rs:
                continue

            def ms(key, scale=1.0):
                xs = [r[key] * scale for r in rs]
                m = sum(xs) / len(xs)
                se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs)) if len(xs) > 1 else 0
                return m, se

            mc, hq, kl = ms("modes_covered"), ms("high_quality_fraction", 100), ms("reverse_kl")
            lines.append(f"| {ds} ({n_modes[ds]} modes) | {v} | {mc[0]:.1f} ± {mc[1]:.1f} | {hq[0]:.1f}% ± {hq[1]:.1f} | "
                         f"{kl[0]:.2f} ± {kl[1]:.2f} | {PUBLISHED.get((ds, v), '')} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 seeds and 1,000 steps")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=2500)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--datasets", default="ring,grid")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--protocol", choices=["small", "paper"], default="small",
                    help="small: one 3x256 / 2x256 MLP pair for every variant; paper: PacGAN's networks, "
                    "initialisation and optimiser (use --steps 400000 for its full budget)")
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed")
    ap.add_argument("--out", default=str(ROOT / "reports" / "mode_collapse.json"))
    args = ap.parse_args()
    seeds, steps = (2, 1000) if args.quick else (args.seeds, args.steps)
    jobs = [(ds, v, args.seed_offset + s, steps, args.batch_size, args.protocol) for ds in args.datasets.split(",")
            for v in args.variants.split(",") for s in range(seeds)]
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        rows = []
        for r in pool.map(run_one, *zip(*jobs)):
            rows.append(r)
            print(f"{r['dataset']:<5} {r['variant']:<15} seed {r['seed']}: modes {r['modes_covered']:.0f}, "
                  f"hq {100 * r['high_quality_fraction']:.1f}%, rKL {r['reverse_kl']:.2f} ({r['seconds']} s)", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"steps": steps, "seeds": seeds, "batch_size": args.batch_size,
                                          "protocol": args.protocol,
                                          "shared": PAPER if args.protocol == "paper" else SHARED,
                                          "rows": rows}, indent=1))
    print(f"\n{steps} steps, batch {args.batch_size}, {seeds} seeds, {time.time() - t0:.0f} s\n")
    print(summarize(rows, {"ring": 8, "grid": 25}))


if __name__ == "__main__":
    main()
