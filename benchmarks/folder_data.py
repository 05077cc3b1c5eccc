"""A generated folder of RGB JPEGs in class folders, for the data-scale benchmarks and tests:
``python -m benchmarks.folder_data OUT --n 50000 --size 32``.

Each class is a shape (disc, square, triangle, cross, ring, bars, ...) of a class-typical hue on a
textured background, at a random position, size, rotation and brightness, so that the classes
can be learned but not from one pixel.  Seeded: the same arguments give the same files."""

from __future__ import annotations

import argparse
import math
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

N_CLASSES = 10


def _image(k: int, size: int, rng: np.random.Generator):
    from PIL import Image, ImageDraw

    bg = rng.integers(0, 256, 3)
    img = Image.fromarray(np.clip(bg + rng.normal(0, 25, (size, size, 3)), 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(img)
    hue = (k / N_CLASSES + rng.normal(0, 0.03)) % 1.0
    rgb = tuple(int(255 * (0.5 + 0.5 * math.cos(2 * math.pi * (hue + s / 3)))) for s in range(3))
    r = size * rng.uniform(0.18, 0.35)
    cx, cy = rng.uniform(r, size - r, 2)
    a = rng.uniform(0, 2 * math.pi)
    poly = lambda m, rr=r: [(cx + rr * math.cos(a + 2 * math.pi * i / m), cy + rr * math.sin(a + 2 * math.pi * i / m))  # noqa: E731
                            for i in range(m)]
    shape = k % 5
    if shape == 0:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=rgb)
    elif shape == 1:
        d.polygon(poly(4), fill=rgb)
    elif shape == 2:
        d.polygon(poly(3), fill=rgb)
    elif shape == 3:
        d.line([(cx - r, cy), (cx + r, cy)], fill=rgb, width=max(1, int(r / 2)))
        d.line([(cx, cy - r), (cx, cy + r)], fill=rgb, width=max(1, int(r / 2)))
    else:
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline=rgb, width=max(1, int(r / 3)))
    if k >= 5:  # the second five classes: the same shapes with a stripe across
        d.line([(0, cy), (size, cy)], fill=tuple(255 - c for c in rgb), width=max(1, size // 16))
    return img


def _write(args) -> int:
    out, start, stop, size, seed = args
    for i in range(start, stop):
        rng = np.random.default_rng((seed, i))
        k = i % N_CLASSES
        _image(k, size, rng).save(Path(out) / f"class_{k}" / f"{i:07d}.jpg", quality=90)
    return stop - start


def make_folder(out: str | Path, n: int, size: int = 32, seed: int = 0, workers: int | None = None) -> Path:
    """``n`` JPEGs of ``size`` px under ``out/class_<k>/``; returns ``out``."""
    out = Path(out)
    for k in range(N_CLASSES):
        (out / f"class_{k}").mkdir(parents=True, exist_ok=True)
    chunk = 2000
    jobs = [(str(out), s, min(s + chunk, n), size, seed) for s in range(0, n, chunk)]
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write, jobs))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--n", type=int, default=50000)
    p.add_argument("--size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    t0 = time.time()
    make_folder(a.out, a.n, a.size, a.seed)
    print(f"{a.n} images of {a.size} px in {a.out} ({time.time() - t0:.1f} s)")


if __name__ == "__main__":
    main()
