"""Sanity of the image metrics on real digits, and evaluation throughput per feature extractor.

Uses the prepared default data (runs the prepare stage first if needed):
  * FID / KID / precision / recall between two disjoint halves of the real training split
    (should be near 0 / near 1) against a blurred copy and a collapsed (one-class) set;
  * IS of real data (should be near the number of classes) and of the one-class set (near 1);
  * the diversity of each set (mean pairwise clfpips: the LPIPS construction on the classifier,
    uncalibrated) as a ratio to that of real half A (near 1 for real data, well below for a collapsed set);
  * images per second through each extractor at a few batch sizes (Inception with random
    weights: the speed does not depend on the values).

    python benchmarks/eval_sanity.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def blur(x_uint8: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    k = torch.arange(-3, 4, dtype=torch.float32)
    k = torch.exp(-k ** 2 / (2 * sigma ** 2))
    k = (k / k.sum())
    t = torch.from_numpy(x_uint8).float()
    c = t.shape[1]
    t = F.conv2d(F.pad(t, (3, 3, 0, 0), mode="replicate"), k.view(1, 1, 1, 7).repeat(c, 1, 1, 1), groups=c)
    t = F.conv2d(F.pad(t, (0, 0, 3, 3), mode="replicate"), k.view(1, 1, 7, 1).repeat(c, 1, 1, 1), groups=c)
    return t.round().clamp(0, 255).to(torch.uint8).numpy()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    import os

    os.chdir(ROOT)
    from gan_models import metrics as M
    from gan_models.features import EXTRACTORS, load_for
    from tasks.layout import Layout, load_prepared
    from tasks.config import load_params
    from tasks.prepare import prepare

    params = load_params("params.yaml")
    prepare(params)
    prep = load_prepared(Layout())
    ext = load_for(Layout().prepared, prep.manifest)
    x, y = prep.train_x, prep.train_y
    half = len(x) // 2
    a, b = x[:half], x[half:2 * half]
    fa, la = ext(a)
    sets = {"real half B (disjoint)": b, "blurred half B (sigma 1)": blur(b),
            "one class (all 1s of the train split)": x[y == 1]}
    print(f"Metrics on {prep.manifest['dataset']} ({ext.name} features), reference: real half A ({half} images)\n")
    from gan_models.features.perceptual import classifier_pips
    from gan_models.metrics.diversity import mean_pairwise

    dist = classifier_pips(Layout().prepared / "classifier.pt")
    pairs = 500 if args.quick else 2000
    div_a = mean_pairwise(dist, a, pairs, seed=0)
    print("| compared set | n | FID | KID | precision | recall | IS | clfpips diversity (ratio to real) |")
    print("|---|---|---|---|---|---|---|---|")
    ref = M.reference_stats(fa)
    mean_is, _ = M.inception_score(la, splits=10)
    for name, s in sets.items():
        f, lg = ext(s)
        kid_m, _ = M.kid(fa, f, n_subsets=20 if args.quick else 100)
        p, r = M.precision_recall(fa, f)
        is_m, _ = M.inception_score(lg, splits=10)
        div = mean_pairwise(dist, s, pairs, seed=0)
        print(f"| {name} | {len(s)} | {M.fid(ref, f):.2f} | {kid_m:.4f} | {p:.3f} | {r:.3f} | {is_m:.2f} | "
              f"{div:.4f} ({div / div_a:.2f}) |")
    print(f"\nIS of real half A: {mean_is:.2f} (10 classes); its clfpips diversity {div_a:.4f} ({pairs} pairs)\n")

    print("Extractor throughput on this CPU (images/s, 28x28 grey input)\n")
    print("| extractor | batch size | images/s |")
    print("|---|---|---|")
    from gan_models.features.classifier import features_and_logits, load_classifier

    model = load_classifier(Layout().prepared / "classifier.pt")
    data = torch.from_numpy(x[:2000])
    for bs in (50, 200, 500):
        features_and_logits(model, data[:bs], batch_size=bs)  # warm-up
        t = time.perf_counter()
        features_and_logits(model, data, batch_size=bs)
        print(f"| classifier | {bs} | {len(data) / (time.perf_counter() - t):,.0f} |")
    imgs = torch.from_numpy(x[:60 if args.quick else 200])
    import tempfile

    from gan_models.features.inception import WEIGHTS_NAME, FIDInception

    with tempfile.TemporaryDirectory() as d:
        w = Path(d) / WEIGHTS_NAME
        torch.save(FIDInception().net.state_dict(), w)
        for bs in (16, 50):
            inc = EXTRACTORS.get("inception")(None, weights=str(w), batch_size=bs)
            inc(imgs[:bs])  # warm-up
            n = len(imgs)
            t = time.perf_counter()
            inc(imgs)
            print(f"| inception (299x299) | {bs} | {n / (time.perf_counter() - t):,.1f} |")
    print("\nPerceptual distance throughput (image pairs/s, 28x28 grey input; LPIPS-AlexNet with random "
          "backbone weights, resized to 64x64)\n")
    print("| distance | pairs/s |")
    print("|---|---|")
    from gan_models.features.perceptual import BACKBONES, lpips

    with tempfile.TemporaryDirectory() as d:
        import torchvision

        w = Path(d) / BACKBONES["alex"][1]
        torch.save(torchvision.models.alexnet(weights=None).state_dict(), w)
        pa, pb = data[:1000], data[1000:2000]
        for name, fn in (("clfpips (classifier, uncalibrated)", dist), ("lpips-alex", lpips("alex", w))):
            fn(pa[:100], pb[:100])  # warm-up
            t = time.perf_counter()
            fn(pa, pb)
            print(f"| {name} | {len(pa) / (time.perf_counter() - t):,.0f} |")


if __name__ == "__main__":
    main()
