"""Scaling and peak memory: how training and evaluation time and peak RSS grow with image size,
batch size and the number of samples for FID, and how the pipeline's wall time grows with the
number of variants run concurrently on this machine's cores.

Every measurement runs in a fresh subprocess (so its peak RSS is its own).

    python benchmarks/scaling.py            # full
    python benchmarks/scaling.py --quick    # fewer steps and samples, no pipeline runs

Writes a table to stdout and the plot reports/benchmarks/scaling.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def child_train(size: int, batch: int, steps: int) -> dict:
    import torch

    from gan_models import variants as V
    from gan_models.training import Trainer

    torch.manual_seed(0)
    spec = V.resolve("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}})
    gan = V.build(spec, V.DataInfo("image", (1, size, size), 10))
    data = torch.randint(0, 256, (5000, 1, size, size), dtype=torch.uint8)
    tr = Trainer(gan, data, batch_size=batch, seed=0)
    tr.run(3, log_every=0, progress=False)  # warm-up
    base_rss = _rss_mib()
    t = time.perf_counter()
    tr.run(3 + steps, log_every=10, progress=False)
    s = time.perf_counter() - t
    return {"seconds": s, "steps_per_s": steps / s, "images_per_s": steps * batch / s,
            "peak_rss_mib": _rss_mib(), "rss_before_mib": base_rss}


def child_eval(size: int, n: int) -> dict:
    """What the evaluate stage does per variant: n samples from G, classifier features, FID
    against cached reference statistics, IS."""
    import numpy as np
    import torch

    from gan_models import metrics as M
    from gan_models import variants as V
    from gan_models.features.classifier import SmallCNN, features_and_logits
    from gan_models.training import sample

    torch.manual_seed(0)
    spec = V.resolve("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}})
    gan = V.build(spec, V.DataInfo("image", (1, size, size), 10))
    clf = SmallCNN(1, 10).eval()
    real = torch.randint(0, 256, (2000, 1, size, size), dtype=torch.uint8)
    ref = M.reference_stats(features_and_logits(clf, real)[0])
    t = time.perf_counter()
    x = sample(gan.G, n, gan.z_dim, seed=1)
    t_sample = time.perf_counter() - t
    feats, logits = features_and_logits(clf, x)
    t_feat = time.perf_counter() - t - t_sample
    M.fid(ref, feats)
    M.inception_score(logits)
    s = time.perf_counter() - t
    return {"seconds": s, "sample_s": t_sample, "features_s": t_feat, "images_per_s": n / s,
            "peak_rss_mib": _rss_mib(), "finite": bool(np.isfinite(feats).all())}


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def pipeline_wall(n_variants: int, parallel: int, steps: int) -> float:
    """Wall time of `flows run` on a copy of the project with n small DCGAN-family variants."""
    import yaml

    presets = ["dcgan", "lsgan", "sngan", "wgan_gp"][:n_variants]
    small = {"generator": {"width": 16}, "discriminator": {"width": 16}}
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"].update({"steps": steps, "checkpoint_every": steps // 2, "parallel": parallel,
                            "threads": max(1, (os.cpu_count() or 1) // parallel),
                            "variants": {p: {**small, **({"loss": {"n_critic": 1}} if p == "wgan_gp" else {})}
                                         for p in presets}})
    params["select"]["n_samples"] = 500
    params["evaluate"]["n_samples"] = 1000
    params["prepare"]["classifier_samples"] = 4000
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "params.yaml").write_text(yaml.safe_dump(params))
        env = {**os.environ, "PREFECT_HOME": str(tmp / "prefect"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/m.db",
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PYTHONPATH": str(ROOT)}
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "flows", "run", "--quiet"], cwd=tmp, env=env, check=True,
                       capture_output=True)
        return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        kind, *rest = args.child
        res = child_train(*map(int, rest)) if kind == "train" else child_eval(*map(int, rest))
        print(json.dumps(res))
        return
    q = args.quick
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} cores, {torch.get_num_threads()} threads; DCGAN width 32, "
          "1 channel; each row a fresh process\n")
    rows_train = []
    print("Training (steps timed after 3 warm-up steps; statistics every 10 steps)\n")
    print("| image size | batch | steps/s | images/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|")
    for size, batch in [(28, 64), (32, 64), (64, 64), (28, 32), (28, 128)]:
        steps = max(5, (40 if size < 64 else 12) // (4 if q else 1))
        r = run_child("train", str(size), str(batch), str(steps))
        rows_train.append((size, batch, r))
        print(f"| {size} | {batch} | {r['steps_per_s']:.2f} | {r['images_per_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    print("\nEvaluation (sampling + classifier features + FID + IS, as the evaluate stage)\n")
    print("| image size | samples | seconds | of which sampling | of which features | images/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    rows_eval = []
    sizes_n = [(28, 1000), (28, 5000), (28, 10000), (32, 5000), (64, 5000)]
    if q:
        sizes_n = [(28, 1000), (28, 2000), (64, 1000)]
    for size, n in sizes_n:
        r = run_child("eval", str(size), str(n))
        rows_eval.append((size, n, r))
        print(f"| {size} | {n} | {r['seconds']:.1f} | {r['sample_s']:.1f} | {r['features_s']:.1f} | "
              f"{r['images_per_s']:.0f} | {r['peak_rss_mib']:.0f} |")
    rows_pipe = []
    if not q:
        print("\nPipeline wall time by number of variants (small DCGAN family, 200 steps each, tracking on)\n")
        print("| variants | parallel 1 (s) | parallel = variants (s) | ratio |")
        print("|---|---|---|---|")
        for n in (1, 2, 4):
            seq = pipeline_wall(n, 1, 200)
            par = pipeline_wall(n, n, 200) if n > 1 else seq
            rows_pipe.append((n, seq, par))
            print(f"| {n} | {seq:.0f} | {par:.0f} | {par / seq:.2f} |")
    _plot(rows_train, rows_eval, rows_pipe)


def _plot(rows_train, rows_eval, rows_pipe):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = ROOT / "reports" / "benchmarks" / "scaling.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    by_size = [(s, r) for s, b, r in rows_train if b == 64]
    axes[0].plot([s for s, _ in by_size], [r["images_per_s"] for _, r in by_size], "o-", label="batch 64")
    by_batch = [(b, r) for s, b, r in rows_train if s == 28]
    ax0b = axes[0].twiny()
    ax0b.plot([b for b, _ in sorted(by_batch)], [r["images_per_s"] for _, r in sorted(by_batch)], "s--",
              color="tab:orange", label="28 px, by batch (top axis)")
    axes[0].set_xlabel("image size (px)")
    ax0b.set_xlabel("batch size")
    axes[0].set_ylabel("training images/s")
    axes[0].legend(loc="upper right", fontsize=8)
    ax0b.legend(loc="center right", fontsize=8)
    for size in sorted({s for s, _, _ in rows_eval}):
        pts = [(n, r["seconds"]) for s, n, r in rows_eval if s == size]
        axes[1].plot(*zip(*pts), "o-", label=f"{size} px")
    axes[1].set_xlabel("samples for FID")
    axes[1].set_ylabel("evaluation seconds")
    axes[1].legend(fontsize=8)
    if rows_pipe:
        ns = [n for n, _, _ in rows_pipe]
        axes[2].plot(ns, [s for _, s, _ in rows_pipe], "o-", label="one at a time")
        axes[2].plot(ns, [p for _, _, p in rows_pipe], "s-", label="all at once")
        axes[2].set_xlabel("variants")
        axes[2].set_ylabel("pipeline wall time (s)")
        axes[2].legend(fontsize=8)
    else:
        axes[2].set_visible(False)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f"\nplot: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
