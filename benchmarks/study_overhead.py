"""A study's overhead: a 2-variant x 4-seed study run by one `python -m flows run` against the
same 8 training runs done with the single-seed pipeline, one `flows run` per seed (2 variants
each), side by side in one process of this script.

Both sides train the same networks for the same steps on ring data (the 2D mixture) with MLflow
tracking into their own stores; each side gets its own project folder, PREFECT_HOME and store.
What differs: the study prepares the data and starts Prefect once, and adds the study stage
(intervals, tests, plots); the single runs pay Prefect's temporary server and the prepare stage
per run (a seed changes the data split too).  The two sides alternate in rotated order over the
rounds.

    python benchmarks/study_overhead.py             # 300 steps, 2 rounds (about 6 minutes)
    python benchmarks/study_overhead.py --quick     # 40 steps, 1 round
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEEDS = [0, 1, 2, 3]


def params(steps: int, seeds: list[int] | None) -> dict:
    doc = {"seed": 0, "device": "cpu", "prepare": {"dataset": "ring", "n_points": 5000},
           "train": {"steps": steps, "batch_size": 64, "checkpoint_every": max(1, steps // 3), "log_every": 10,
                     "parallel": 1, "threads": 1,
                     "variants": {"mlp": {"generator": {"hidden": [64]}, "discriminator": {"hidden": [64]}},
                                  "mlp_deep": {}}},
           "select": {"n_samples": 1000}, "evaluate": {"n_samples": 2000}, "tracking": {"experiment": "overhead"}}
    if seeds is not None:
        doc["seeds"] = seeds
    return doc


def project(dest: Path, doc: dict) -> Path:
    dest.mkdir(parents=True)
    for name in ("flows", "tasks", "gan_models"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    (dest / "params.yaml").write_text(json.dumps(doc))
    return dest


def flows_run(cwd: Path, *args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(cwd), "PREFECT_HOME": str(cwd / ".prefect"),
           "MLFLOW_TRACKING_URI": f"sqlite:///{cwd / 'mlflow.db'}"}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows", "run", "--quiet", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"flows run failed in {cwd}: {proc.stderr[-3000:]}")
    return time.perf_counter() - t0


def study_side(tmp: Path, steps: int) -> float:
    return flows_run(project(tmp / "study", params(steps, SEEDS)))


def single_side(tmp: Path, steps: int) -> float:
    proj = project(tmp / "single", params(steps, None))
    return sum(flows_run(proj, "--set", f"seed={s}") for s in SEEDS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", default=None, help="results JSON (default reports/benchmarks/study_overhead.json)")
    ap.add_argument("--quick", action="store_true", help="40 steps, 1 round (a smoke run; its own results file)")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.rounds = 40, 1
    args.out = args.out or f"reports/benchmarks/study_overhead{'_quick' if args.quick else ''}.json"
    sides = {"study (1 flows run, seeds: [0,1,2,3])": study_side, "8 single runs (4 flows runs, seed=0..3)": single_side}
    times: dict[str, list[float]] = {k: [] for k in sides}
    for r in range(args.rounds):
        order = list(sides)[r % 2:] + list(sides)[:r % 2]
        for name in order:
            with tempfile.TemporaryDirectory() as tmp:
                t = sides[name](Path(tmp), args.steps)
            times[name].append(t)
            print(f"round {r + 1}: {name}: {t:.1f} s", flush=True)
    study, single = (statistics.median(v) for v in times.values())
    result = {"steps": args.steps, "variants": 2, "seeds": SEEDS, "rounds": args.rounds, "wall_s": times,
              "median_study_s": study, "median_single_s": single, "study_over_single": study / single,
              "cpu": _cpu()}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\n| side | wall (median of {args.rounds}) |\n|---|---|")
    for name, v in times.items():
        print(f"| {name} | {statistics.median(v):.1f} s |")
    print(f"\nstudy / single runs: {study / single:.2f}  ({args.steps} steps per run; written: {out})")
    return 0


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cores"
    except OSError:
        pass
    return f"{os.cpu_count()} cores"


if __name__ == "__main__":
    sys.exit(main())
