"""Stacked MNIST: the 1,000-mode collapse benchmark on images, for the anti-collapse variants.

Three embedded digits as the three channels of one 28x28 image: 1,000 modes, drawn uniformly
(Metz et al. 2017; VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018).  The data is the
real prepare stage's ``stacked_mnist`` (``prepare.n_points`` images; the held-out ones stack
held-out digits only), prepared once in a scratch project.

Every variant trains one shared architecture for one step budget and keeps only its own trick:

  dcgan           the DCGAN networks, BCE (non-saturating G loss)
  pacgan          the same D judging packs of 2 samples (PacDCGAN2); a step draws batch x 2 samples
  minibatch_disc  the same D with a minibatch-discrimination layer (16 features)
  unrolled        G's loss against D unrolled 5 steps ahead

Shared: DCGAN G of width 32 (z 100 -> 64 x 7 x 7 -> 32 x 14 x 14 -> 3 x 28 x 28) and a D of a
quarter of its width (8), as in the Unrolled-GAN experiment PacGAN reruns ("D = 1/4 G": a small
D is what makes a DCGAN drop modes there); batch 64, Adam 2e-4, beta1 0.5.  After training,
``--samples`` (26,000, as PacGAN) generated images are read channel by channel by the data set's
digit classifier (its held-out accuracy is reported beside every count: its errors bound the
count) and scored with ``gan_models.metrics.mode_histogram_metrics``: modes covered (of 1,000) and
KL(generated mode histogram || uniform).  Mean ± standard error over seeds.  Results go to
``reports/benchmarks/stacked_mnist.json`` after every run; a rerun skips the runs already there.

    python benchmarks/stacked_mnist.py                           # 4 variants x 3 seeds, 5,000 steps
    python benchmarks/stacked_mnist.py --seeds 5 --variants dcgan,pacgan
    python benchmarks/stacked_mnist.py --quick                   # 2 variants, 1 seed, 200 steps
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.mode_collapse import _mean_se, save_figure  # noqa: E402

OUT = ROOT / "reports" / "benchmarks"
VARIANTS = ["dcgan", "pacgan", "minibatch_disc", "unrolled"]
TRICKS = {"dcgan": {}, "pacgan": {"pack": 2}, "minibatch_disc": {}, "unrolled": {"unrolled_steps": 5}}
PUBLISHED = {  # modes / KL; VEEGAN Table 2 (DCGAN, Unrolled) and PacGAN Table 3 (PacDCGAN2)
    "dcgan": "99 / 3.40 (VEEGAN T2; Unrolled-GAN setting D=1/4G: 30.6 / 5.99)",
    "pacgan": "1,000 / 0.06 (PacDCGAN2, PacGAN T3)",
    "minibatch_disc": "-",
    "unrolled": "48.7 / 4.32 (VEEGAN T2)",
}
N_POINTS = 50_000


def spec_for(variant: str, g_width: int, d_width: int) -> dict:
    from gan_models import variants as V

    d = {"arch": "dcgan", "width": d_width, **({"minibatch_features": 16} if variant == "minibatch_disc" else {})}
    return V.resolve("dcgan", {"generator": {"arch": "dcgan", "width": g_width}, "discriminator": d,
                                    "loss": {"name": "bce"}, "tricks": TRICKS[variant], "z_dim": 100,
                                    "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]})


def prepared_project(workdir: Path, n_points: int) -> Path:
    proj = workdir / f"project_{n_points}"
    if not (proj / "data" / "prepared" / "manifest.json").exists():
        proj.mkdir(parents=True, exist_ok=True)
        doc = {"seed": 0, "prepare": {"dataset": "stacked_mnist", "n_points": n_points},
               "train": {"variants": {"dcgan": {}}}, "tracking": {"enabled": False}}
        (proj / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        subprocess.run([sys.executable, "-m", "flows", "prepare", "--quiet"], cwd=proj, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proj


def count_modes(reader, G, z_dim: int, n: int, seed: int) -> dict:
    """Modes covered and KL of ``n`` samples of ``G`` (in chunks: the joint logits are n x 1,000)."""
    import numpy as np

    from gan_models import metrics as M
    from gan_models.training import sample

    modes = [reader(sample(G, min(5000, n - i), z_dim, seed=seed + i))[1].argmax(1) for i in range(0, n, 5000)]
    return M.mode_histogram_metrics(np.concatenate(modes), 1000)


def run_one(proj: Path, variant: str, seed: int, steps: int, g_width: int, d_width: int, batch_size: int,
            eval_every: int, samples: int) -> dict:
    import torch

    from gan_models import variants as V
    from gan_models.features import EXTRACTORS
    from gan_models.training import Trainer
    from tasks.layout import Layout, load_prepared

    layout = Layout(proj)
    prep = load_prepared(layout)
    reader = EXTRACTORS.get("stacked_digits")(layout.prepared)
    torch.manual_seed(seed)
    gan = V.build(spec_for(variant, g_width, d_width), prep.info)
    tr = Trainer(gan, torch.from_numpy(prep.train_x), batch_size=batch_size, seed=seed)
    curve, t0 = [], time.time()
    for stop in [*range(eval_every, steps, eval_every), steps]:
        tr.run(stop, log_every=0, progress=False)
        n = samples if stop == steps else min(samples, 5000)
        curve.append({"step": stop, "samples": n, **count_modes(reader, gan.G, gan.z_dim, n, 10_000 + seed)})
        print(f"  {variant} seed {seed} step {stop}: {curve[-1]['modes_covered']:.0f} modes, KL "
              f"{curve[-1]['reverse_kl']:.2f} ({n} samples)", flush=True)
    return {"variant": variant, "seed": seed, "steps": steps, "g_width": g_width, "d_width": d_width,
            "batch_size": batch_size, "samples": samples, "modes_covered": curve[-1]["modes_covered"],
            "reverse_kl": curve[-1]["reverse_kl"], "seconds": round(time.time() - t0, 1), "curve": curve}


def summarize(rows: list[dict], reader_info: dict) -> str:
    lines = [f"Digit reader (the data set's digit classifier, tested on held-out digits): "
             f"{reader_info['heldout_accuracy']:.1%} per digit, {reader_info['heldout_mode_accuracy']:.1%} of "
             "held-out images with all three digits right.", "",
             "| variant | seeds | steps | modes covered (of 1,000) | KL to uniform | train s / run | published (modes / KL) |",
             "|---|---|---|---|---|---|---|"]
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue
        mc, kl = _mean_se([r["modes_covered"] for r in rs]), _mean_se([r["reverse_kl"] for r in rs])
        sec = sum(r["seconds"] for r in rs) / len(rs)
        lines.append(f"| {v} | {len(rs)} | {rs[0]['steps']:,} | {mc[0]:.1f} ± {mc[1]:.1f} | {kl[0]:.2f} ± {kl[1]:.2f} | "
                     f"{sec:.0f} | {PUBLISHED[v]} |")
    lines += ["", "Per seed (modes / KL): " + "; ".join(
        f"{v}: " + ", ".join(f"{r['modes_covered']:.0f} / {r['reverse_kl']:.2f}"
                             for r in sorted((r for r in rows if r["variant"] == v), key=lambda r: r["seed"]))
        for v in VARIANTS if any(r["variant"] == v for r in rows))]
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import math

    import matplotlib
    import numpy as np

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    for v in VARIANTS:
        rs = [r for r in rows if r["variant"] == v]
        if not rs:
            continue
        steps = [c["step"] for c in rs[0]["curve"]]
        for ax, key in ((a, "modes_covered"), (b, "reverse_kl")):
            vals = np.array([[c[key] for c in r["curve"]] for r in rs if len(r["curve"]) == len(steps)])
            m = vals.mean(0)
            se = vals.std(0, ddof=1) / math.sqrt(len(vals)) if len(vals) > 1 else np.zeros_like(m)
            ax.plot(steps, m, marker=".", label=v)
            ax.fill_between(steps, m - se, m + se, alpha=0.2)
    a.set(title="modes covered (5,000 samples; last point: all)", xlabel="step")
    b.set(title="KL(generated modes || uniform)", xlabel="step")
    a.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5000)
    ap.add_argument("--eval-every", type=int, default=1000)
    ap.add_argument("--samples", type=int, default=26_000, help="generated samples per final count (PacGAN: 26,000)")
    ap.add_argument("--g-width", type=int, default=32)
    ap.add_argument("--d-width", type=int, default=8, help="D's width (8 = a quarter of G's, PacGAN's D=1/4G)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--n-points", type=int, default=N_POINTS, help="stacked images prepared (10%% held out)")
    ap.add_argument("--quick", action="store_true", help="dcgan and pacgan, 1 seed, 200 steps, 2,000 samples")
    ap.add_argument("--workdir", default=str(ROOT / ".benchmarks" / "stacked_mnist"))
    ap.add_argument("--out", default=str(OUT / "stacked_mnist.json"))
    args = ap.parse_args()
    variants = args.variants.split(",")
    if args.quick:
        variants, args.seeds, args.steps, args.eval_every, args.samples = ["dcgan", "pacgan"], 1, 200, 100, 2000
        args.n_points, args.out = 5000, str(Path(args.workdir) / "quick.json")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        ap.error(f"unknown variant(s) {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    proj = prepared_project(Path(args.workdir), args.n_points)
    out = Path(args.out)
    rows = json.loads(out.read_text())["rows"] if out.exists() else []
    same = lambda r: all(r[k] == v for k, v in (("steps", args.steps), ("g_width", args.g_width),  # noqa: E731
                                                ("d_width", args.d_width), ("batch_size", args.batch_size),
                                                ("samples", args.samples)))
    for seed in range(args.seeds):  # seeds outermost: a stopped study has every variant at equal seeds
        for v in variants:
            if any(r["variant"] == v and r["seed"] == seed and same(r) for r in rows):
                continue
            print(f"{v}, seed {seed}", flush=True)
            rows.append(run_one(proj, v, seed, args.steps, args.g_width, args.d_width, args.batch_size,
                                args.eval_every, args.samples))
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps({"rows": rows}, indent=1))
            os.replace(tmp, out)
    chosen = [r for r in rows if same(r) and r["variant"] in variants]
    manifest = json.loads((proj / "data" / "prepared" / "manifest.json").read_text())
    md = summarize(chosen, manifest["stacked"]["digit_classifier"])
    print(md)
    if not args.quick:
        cmd = "python benchmarks/stacked_mnist.py" + (f" {' '.join(sys.argv[1:])}" if sys.argv[1:] else "")
        (OUT / "stacked_mnist.md").write_text(f"`{cmd}`\n\n{md}\n\n![Stacked MNIST curves](stacked_mnist.png)\n")
        plot(chosen, OUT / "stacked_mnist.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
