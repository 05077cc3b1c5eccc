"""Run every benchmark, one after another: ``python -m benchmarks [--quick] [--only a,b]``.

Each benchmark's output (Markdown tables) is printed and saved to
``reports/benchmarks/<name>.md``; plots go next to it.  Nothing else should run on the machine
meanwhile: the figures are timings.  The full set takes about eight hours on 2 cores, most of it
the mode-collapse study (GAN against PacGAN2 with PacGAN's networks, 5 seeds on ring and grid;
``benchmarks/mode_collapse.py`` alone runs all five variants), the Stacked MNIST study (about two
hours), the time-to-quality recipes (about 70 minutes) and the translation runs (12 minutes);
``--quick`` a few minutes (smaller sizes, fewer steps and repeats: for checking, not for reporting).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ["fid_speed", "eval_sanity", "train_throughput", "speedups", "scaling", "orchestration", "study_overhead",
              "mode_collapse", "translation", "time_to_quality", "stacked_mnist"]
# Arguments of the full (not --quick) run where a benchmark's own defaults would take longer.
FULL_ARGS = {"mode_collapse": ["--variants", "mlp,pacgan"]}


def main() -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, few steps: a smoke run of every benchmark")
    ap.add_argument("--only", default="", help=f"comma-separated subset of: {', '.join(BENCHMARKS)}")
    args = ap.parse_args()
    chosen = [b for b in BENCHMARKS if not args.only or b in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - set(BENCHMARKS)
    if unknown:
        print(f"error: unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    out_dir = ROOT / "reports" / "benchmarks"
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in chosen:
        cmd = [sys.executable, str(ROOT / "benchmarks" / f"{name}.py"),
               *(["--quick"] if args.quick else FULL_ARGS.get(name, []))]
        print(f"\n## {name}\n\n$ {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}\n", flush=True)
        t = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        took = time.perf_counter() - t
        print(proc.stdout, flush=True)
        if proc.returncode != 0:
            failed.append(name)
            print(f"FAILED (exit {proc.returncode}):\n{proc.stderr[-3000:]}", flush=True)
        (out_dir / f"{name}.md").write_text(f"`{' '.join(cmd[1:])}` ({took:.0f} s)\n\n{proc.stdout}")
        print(f"({took:.0f} s)", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
