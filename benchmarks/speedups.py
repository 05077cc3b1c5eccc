"""Training speed-ups, each measured against the project's loop as it is, side by side: fused
Adam, channels_last memory format, and torch.compile of G and D (inductor).

DCGAN (width 32), batch 64, statistics every 10 steps; for every configuration a freshly built
network with the same seed; configurations interleaved, median of the repeats.  Compilation time
is reported separately and excluded from steps/s (it is paid once per process).

    python benchmarks/speedups.py [--quick] [--sizes 28,64] [--no-compile]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gan_models import variants as V  # noqa: E402
from gan_models.training import Trainer  # noqa: E402


def _trainer(size: int, batch: int, cfg: set[str]) -> Trainer:
    torch.manual_seed(0)
    spec = V.resolve_spec("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}})
    gan = V.build("dcgan", spec, V.DataInfo("image", (1, size, size), 10))
    if "channels_last" in cfg:
        gan.G.to(memory_format=torch.channels_last)
        gan.D.to(memory_format=torch.channels_last)
    data = torch.randint(0, 256, (4000, 1, size, size), dtype=torch.uint8)
    tr = Trainer(gan, data, batch_size=batch, seed=0)
    if "fused" in cfg:
        s = gan.spec
        tr.opt_g = torch.optim.Adam(tr.G.parameters(), lr=s["lr_g"], betas=tuple(s["betas"]), fused=True)
        tr.opt_d = torch.optim.Adam(tr.D.parameters(), lr=s["lr_d"], betas=tuple(s["betas"]), fused=True)
    if "channels_last" in cfg:
        plain_batch = tr.batch

        def batch_cl():
            b = plain_batch()
            b.real = b.real.contiguous(memory_format=torch.channels_last)
            return b
        tr.batch = batch_cl
    if "compile" in cfg:
        tr.G = torch.compile(tr.G)
        tr.D.forward_all = torch.compile(tr.D.forward_all)
    return tr


CONFIGS = [("as is (foreach Adam)", set()), ("fused Adam", {"fused"}), ("channels_last", {"channels_last"}),
           ("fused + channels_last", {"fused", "channels_last"}), ("torch.compile G and D", {"compile"})]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="28,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    configs = [c for c in CONFIGS if not (args.no_compile and "compile" in c[1])]
    reps = 1 if args.quick else args.repeats
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch 64, median of {reps}\n")
    print("| image size | configuration | steps/s | speed-up vs as is | compile / warm-up (s) |")
    print("|---|---|---|---|---|")
    for size in map(int, args.sizes.split(",")):
        steps = (40 if size < 64 else 12) // (4 if args.quick else 1)
        speeds = {name: [] for name, _ in configs}
        warm = {}
        for _ in range(reps):
            for name, cfg in configs:
                tr = _trainer(size, 64, cfg)
                t = time.perf_counter()
                try:
                    tr.run(3, log_every=0, progress=False)  # warm-up (compiles)
                    tr.run(4, log_every=1, progress=False)  # the statistics path compiles too
                except Exception as e:  # noqa: BLE001 - report, do not stop the benchmark
                    warm[name] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:80]}"
                    continue
                warm[name] = time.perf_counter() - t
                t = time.perf_counter()
                tr.run(4 + steps, log_every=10, progress=False)
                speeds[name].append(steps / (time.perf_counter() - t))
        base = statistics.median(speeds[configs[0][0]])
        for name, _ in configs:
            if not speeds[name]:
                print(f"| {size} | {name} | - | - | {warm[name]} |")
                continue
            s = statistics.median(speeds[name])
            w = warm[name]
            print(f"| {size} | {name} | {s:.2f} | {s / base:.2f} | {w:.1f} |")


if __name__ == "__main__":
    main()
