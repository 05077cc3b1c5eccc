"""Training speed-ups, each measured against the project's loop as it is, side by side: fused
Adam, channels_last memory format, and torch.compile of G and D (inductor); then, in fresh
processes, glibc's default allocator settings against ``gan_models.runtime.keep_freed_memory``
(which every stage applies).

DCGAN (width 32), batch 64, statistics every 10 steps; for every configuration a freshly built
network with the same seed; configurations interleaved, median of the repeats.  Compilation time
is reported separately and excluded from steps/s (it is paid once per process).

    python benchmarks/speedups.py [--quick] [--sizes 28,64] [--no-compile] [--only allocator]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gan_models import variants as V  # noqa: E402
from gan_models.training import Trainer  # noqa: E402


def _trainer(size: int, batch: int, cfg: set[str]) -> Trainer:
    torch.manual_seed(0)
    spec = V.resolve("dcgan", {"generator": {"width": 32}, "discriminator": {"width": 32}})
    gan = V.build(spec, V.DataInfo("image", (1, size, size), 10))
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


ALLOC_CASES = [("mlp", 28, 2000), ("dcgan", 28, 300), ("dcgan", 64, 40)]  # variant, image size, timed steps


def _allocator_child(mode: str, variant: str, size: int, steps: int) -> None:
    """One fresh process: train ``steps`` steps with the allocator tuned ("on") or as glibc sets
    it ("off"); print steps/s and minor page faults per step as JSON."""
    from gan_models import runtime

    if mode == "on":
        assert runtime.keep_freed_memory(), "mallopt is not available here"
    torch.manual_seed(0)
    extra = {"generator": {"width": 32}, "discriminator": {"width": 32}} if variant == "dcgan" else {}
    gan = V.build(V.resolve(variant, extra), V.DataInfo("image", (1, size, size), 10))
    tr = Trainer(gan, torch.randint(0, 256, (4000, 1, size, size), dtype=torch.uint8), batch_size=64, seed=0)
    tr.run(5, log_every=0, progress=False)
    f0, t = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    tr.run(5 + steps, log_every=10, progress=False)
    dt = time.perf_counter() - t
    print(json.dumps({"steps_per_s": steps / dt,
                      "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0) / steps}))


def allocator_table(reps: int, quick: bool) -> None:
    print("\nAllocator, in fresh processes (on and off alternated, median of the repeats):\n")
    print("| variant | image size | glibc default steps/s | kept freed memory steps/s | speed-up | "
          "page faults per step (default -> kept) |")
    print("|---|---|---|---|---|---|")
    for variant, size, steps in ALLOC_CASES:
        steps //= 4 if quick else 1
        res = {"off": [], "on": []}
        for i in range(reps):
            for mode in ("off", "on") if i % 2 == 0 else ("on", "off"):
                out = subprocess.run([sys.executable, __file__, "--allocator-child", mode, variant, str(size), str(steps)],
                                     capture_output=True, text=True, check=True).stdout
                res[mode].append(json.loads(out.strip().splitlines()[-1]))
        med = {m: statistics.median(r["steps_per_s"] for r in rs) for m, rs in res.items()}
        flt = {m: statistics.median(r["faults_per_step"] for r in rs) for m, rs in res.items()}
        print(f"| {variant} | {size} | {med['off']:.2f} | {med['on']:.2f} | {med['on'] / med['off']:.2f} | "
              f"{flt['off']:.0f} -> {flt['on']:.0f} |", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--allocator-child":
        return _allocator_child(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sizes", default="28,64")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--only", choices=["allocator"], default=None, help="only the allocator comparison")
    args = ap.parse_args()
    if args.only == "allocator":
        return allocator_table(1 if args.quick else max(args.repeats, 4), args.quick)
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
    allocator_table(1 if args.quick else max(reps, 4), args.quick)


if __name__ == "__main__":
    main()
