"""The mode-collapse study: vanilla GAN against the anti-collapse variants on the 2D mixtures.

Protocol of PacGAN (Lin et al. 2018, Table 1) after VEEGAN: every variant uses one shared
architecture and step budget and keeps only its own loss or trick; after training, 2,500 samples
are drawn and scored with ``gan_models.metrics.mode_metrics``: *modes covered* (modes with at
least one sample within 3 std), *high-quality samples* (share within 3 std of the nearest mode),
*reverse KL* of the mode histogram to uniform.  Mean and standard error over seeds.  Every
``--eval-every`` steps the same scores are taken, for the learning curves.

Two architectures:
  paper  PacGAN's own 2D setting (fjxmlzn/PacGAN, synthetic_data_experiments/2DGrid_GAN&PacGAN):
         G 4 x 400 with BatchNorm + ReLU, D 3 x 200 maxout units of 5 pieces, weights N(0, 0.02),
         zero biases, Adam 1e-4 with beta1 0.8, a minibatch of 100 (for PacGAN2: 100 packs of 2
         samples), 2-d Gaussian noise.  The paper trains 400,000 steps; the default here is 20,000.
  small  one 3 x 256 / 2 x 256 LeakyReLU pair, Adam 2e-4, 2,500 steps: a fast smoke protocol.

Results go to ``--out`` (JSON, with each run's curve and 500 of its final samples) after every run, and a rerun with the same settings skips the
runs already there, so a long study can be stopped and continued, or extended with more seeds.

    python benchmarks/mode_collapse.py                                  # paper networks, 5 seeds, ring and grid
    python benchmarks/mode_collapse.py --datasets grid --variants mlp,pacgan --seeds 5
    python benchmarks/mode_collapse.py --quick                          # small networks, 2 seeds, 1,000 steps
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ["mlp", "unrolled", "pacgan", "minibatch_disc", "wgan_gp"]
SMALL = {"z_dim": 2, "generator": {"arch": "mlp", "hidden": [256, 256, 256]},
         "discriminator": {"arch": "mlp", "hidden": [256, 256]},
         "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}
PAPER = {"z_dim": 2, "generator": {"arch": "mlp", "hidden": [400] * 4, "batchnorm": True, "slope": 0.0},
         "discriminator": {"arch": "mlp", "hidden": [200] * 3, "maxout": 5},
         "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.8, 0.999]}
PROTOCOLS = {"paper": PAPER, "small": SMALL}
DEFAULT_STEPS = {"paper": 20_000, "small": 2_500}
PUBLISHED = {  # PacGAN Table 1 (10 runs each): modes, % high-quality, reverse KL
    ("grid", "mlp"): "17.3 / 94.8% / 0.70 (GAN)", ("grid", "pacgan"): "23.8 / 91.3% / 0.13 (PacGAN2)",
    ("ring", "mlp"): "6.3 / 98.2% / 0.45 (GAN)", ("ring", "pacgan"): "7.9 / 95.6% / 0.07 (PacGAN2)",
}
N_MODES = {"ring": 8, "grid": 25}
KEY = ("dataset", "variant", "seed", "steps", "batch_size", "protocol", "eval_every")  # the order of a job tuple


def variant_spec(variant: str, protocol: str) -> dict:
    """The shared networks and optimiser with the variant's own loss and tricks."""
    from gan_models import variants as V

    shared = PROTOCOLS[protocol]
    preset = V.resolve(variant)
    overrides = {**shared, "loss": preset.loss.to_dict(), "tricks": dict(preset.tricks_set)}
    if variant == "minibatch_disc":
        overrides["discriminator"] = {**shared["discriminator"], "minibatch_features": 16}
    if variant == "wgan_gp":
        overrides["betas"] = [0.5, 0.9]  # WGAN-GP's own Adam betas, with its loss and n_critic 5
    return V.resolve(variant, overrides)


def run_one(dataset: str, variant: str, seed: int, steps: int, batch_size: int, protocol: str,
            eval_every: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from gan_models import data as D
    from gan_models.data import mixtures as D_mixtures
    from gan_models import metrics as M
    from gan_models import variants as V
    from gan_models.training import Trainer, sample

    raw = D.DATASETS.get(dataset)(n_points=100_000, seed=seed)
    centers, std = D_mixtures.mixture_centers(dataset)
    torch.manual_seed(seed)
    gan = V.build(variant_spec(variant, protocol), V.DataInfo("points", (2,), len(centers)))
    if protocol == "paper":  # PacGAN's initialisation
        for m in [*gan.G.modules(), *gan.D.modules()]:
            if isinstance(m, torch.nn.Linear):
                torch.nn.init.normal_(m.weight, 0.0, 0.02)
                torch.nn.init.zeros_(m.bias)
    tr = Trainer(gan, torch.from_numpy(raw.x), batch_size=batch_size, seed=seed)
    curve = []
    t0 = time.time()
    for stop in [*range(eval_every, steps, eval_every), steps] if eval_every else [steps]:
        tr.run(stop, log_every=0, progress=False)
        pts = sample(gan.G, 2500, gan.z_dim, seed=10_000 + seed).numpy()
        curve.append({"step": stop, **M.mode_metrics(pts, centers, std)})
    out = {k: v for k, v in curve[-1].items() if k != "step"}
    out.update(dataset=dataset, variant=variant, seed=seed, steps=steps, protocol=protocol, batch_size=batch_size,
               eval_every=eval_every, seconds=round(time.time() - t0, 1), curve=curve,
               points=[[round(float(a), 3), round(float(b), 3)] for a, b in pts[:500]])
    return out


def save_figure(fig, path: Path, dpi: int) -> None:
    """Write ``fig`` to ``path`` atomically (a temporary file, then a rename) and close it."""
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=dpi)
    plt.close(fig)
    os.replace(tmp, path)


def _mean_se(xs: list[float]) -> tuple[float, float]:
    m = sum(xs) / len(xs)
    se = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0
    return m, se


def summarize(rows: list[dict]) -> str:
    lines = ["| data | variant | seeds | modes covered | high-quality samples | reverse KL | "
             "reverse KL, high-quality samples | published (PacGAN Table 1) |",
             "|---|---|---|---|---|---|---|---|"]
    for ds in ("ring", "grid"):
        for v in VARIANTS:
            rs = [r for r in rows if r["dataset"] == ds and r["variant"] == v]
            if not rs:
                continue
            mc = _mean_se([r["modes_covered"] for r in rs])
            hq = _mean_se([100 * r["high_quality_fraction"] for r in rs])
            kl = _mean_se([r["reverse_kl"] for r in rs])
            klh = _mean_se([r["reverse_kl_high_quality"] for r in rs])
            lines.append(f"| {ds} ({N_MODES[ds]} modes) | {v} | {len(rs)} | {mc[0]:.1f} ± {mc[1]:.1f} | "
                         f"{hq[0]:.1f}% ± {hq[1]:.1f} | {kl[0]:.2f} ± {kl[1]:.2f} | {klh[0]:.2f} ± {klh[1]:.2f} | "
                         f"{PUBLISHED.get((ds, v), '')} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    """Learning curves (modes covered and high-quality share over steps, mean ± s.e.) and the
    final samples of the first seed of every variant, one row per data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from gan_models.data import mixtures as D_mixtures

    datasets = [d for d in ("ring", "grid") if any(r["dataset"] == d for r in rows)]
    variants = [v for v in VARIANTS if any(r["variant"] == v for r in rows)]
    fig, axes = plt.subplots(len(datasets), 2 + len(variants), figsize=(3.2 * (2 + len(variants)), 3.2 * len(datasets)),
                             squeeze=False)
    for i, ds in enumerate(datasets):
        centers, std = D_mixtures.mixture_centers(ds)
        for v in variants:
            rs = [r for r in rows if r["dataset"] == ds and r["variant"] == v]
            if not rs:
                continue
            steps = [c["step"] for c in rs[0]["curve"]]
            for ax, key, scale in ((axes[i, 0], "modes_covered", 1), (axes[i, 1], "high_quality_fraction", 100)):
                vals = np.array([[c[key] * scale for c in r["curve"]] for r in rs if len(r["curve"]) == len(steps)])
                m = vals.mean(0)
                se = vals.std(0, ddof=1) / math.sqrt(len(vals)) if len(vals) > 1 else np.zeros_like(m)
                ax.plot(steps, m, marker=".", label=v)
                ax.fill_between(steps, m - se, m + se, alpha=0.2)
        axes[i, 0].axhline(N_MODES[ds], color="grey", lw=0.8, ls="--")
        axes[i, 0].set(title=f"{ds}: modes covered", xlabel="step")
        axes[i, 1].set(title=f"{ds}: high-quality samples (%)", xlabel="step", ylim=(0, 100))
        axes[i, 0].legend(fontsize=7)
        for j, v in enumerate(variants):
            ax = axes[i, 2 + j]
            rs = sorted((r for r in rows if r["dataset"] == ds and r["variant"] == v), key=lambda r: r["seed"])
            if rs:
                pts = np.array(rs[0]["points"])
                ax.scatter(pts[:, 0], pts[:, 1], s=2, alpha=0.3, color="k")
                ax.scatter(centers[:, 0], centers[:, 1], s=25, marker="x", color="tab:red")
                ax.set_title(f"{ds}, {v} (seed {rs[0]['seed']}): {rs[0]['modes_covered']:.0f} modes", fontsize=8)
            lim = 1.5 if ds == "ring" else 6
            ax.set(xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal", xticks=[], yticks=[])
    fig.tight_layout()
    save_figure(fig, path, dpi=90)


def _save(path: Path, rows: list[dict]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"rows": rows}, separators=(",", ":")))
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small networks, 2 seeds, 1,000 steps (a smoke run)")
    ap.add_argument("--protocol", choices=sorted(PROTOCOLS), default="paper")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--seed-offset", type=int, default=0, help="first seed")
    ap.add_argument("--steps", type=int, default=None, help="training steps (default: 20,000 paper, 2,500 small)")
    ap.add_argument("--eval-every", type=int, default=None, help="steps between learning-curve points (default steps/8)")
    ap.add_argument("--batch-size", type=int, default=100, help="D's minibatch (for PacGAN: packs)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--datasets", default="ring,grid")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--out", default=None, help="results JSON (default reports/benchmarks/mode_collapse_<protocol>.json)")
    args = ap.parse_args()
    if args.quick:
        args.protocol, args.seeds, args.steps = "small", 2, 1000
    steps = args.steps or DEFAULT_STEPS[args.protocol]
    eval_every = args.eval_every if args.eval_every is not None else max(1, steps // 8)
    unknown = sorted(set(args.variants.split(",")) - set(VARIANTS)) + sorted(set(args.datasets.split(",")) - set(N_MODES))
    if unknown:
        raise SystemExit(f"unknown variant or data set {', '.join(unknown)}; variants: {', '.join(VARIANTS)}; "
                         f"data sets: {', '.join(N_MODES)}")
    out = Path(args.out or ROOT / "reports" / "benchmarks" / f"mode_collapse_{args.protocol}{'_quick' if args.quick else ''}.json")
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    done = {tuple(r[k] for k in KEY) for r in rows}
    jobs = [(ds, v, args.seed_offset + s, steps, args.batch_size, args.protocol, eval_every)
            for ds in args.datasets.split(",") for v in args.variants.split(",") for s in range(args.seeds)]
    todo = [j for j in jobs if j not in done]
    print(f"{len(jobs) - len(todo)} of {len(jobs)} runs already in {out}; running {len(todo)}", file=sys.stderr)
    t0 = time.time()
    with ProcessPoolExecutor(args.workers) as pool:
        futures = [pool.submit(run_one, *j) for j in todo]
        for f in as_completed(futures):
            r = f.result()
            rows.append(r)
            _save(out, rows)
            print(f"{r['dataset']:<5} {r['variant']:<15} seed {r['seed']}: modes {r['modes_covered']:.0f}, "
                  f"hq {100 * r['high_quality_fraction']:.1f}%, rKL {r['reverse_kl']:.2f} ({r['seconds']} s)",
                  file=sys.stderr, flush=True)
    wanted = set(jobs)
    chosen = [r for r in rows if tuple(r[k] for k in KEY) in wanted]
    png = out.with_suffix(".png")
    plot(chosen, png)
    shared = PROTOCOLS[args.protocol]
    print(f"protocol {args.protocol} (G {shared['generator']['hidden']}, D {shared['discriminator']['hidden']}"
          f"{', maxout ' + str(shared['discriminator']['maxout']) if 'maxout' in shared['discriminator'] else ''}), "
          f"{steps} steps, batch {args.batch_size}, seeds {args.seed_offset}..{args.seed_offset + args.seeds - 1}; "
          f"this call {time.time() - t0:.0f} s; CPU time of the runs {sum(r['seconds'] for r in chosen):.0f} s\n")
    print(summarize(chosen))
    print(f"\nlearning curves and samples: {png.relative_to(ROOT) if png.is_relative_to(ROOT) else png}")


if __name__ == "__main__":
    main()
