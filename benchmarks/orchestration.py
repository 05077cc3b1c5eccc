"""Orchestration overhead: the whole pipeline through `python -m flows run` (Prefect flow, MLflow
tracking, DVC recording) against the sum of its stage functions called directly in one process
(no Prefect, MLflow or DVC), on the default config; then a no-change rerun of both `flows run`
and `dvc repro`.

Each side runs in its own fresh copy of the project (fresh PREFECT_HOME and MLflow store), one
after the other on the same machine.

    python benchmarks/orchestration.py            # the default params.yaml (about 15 minutes)
    python benchmarks/orchestration.py --quick    # a tenth of the training steps
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DIRECT = """
import sys, time
t0 = time.perf_counter()
from tasks.config import load_params
from tasks import prepare, train, select, evaluate, export
params = load_params("params.yaml")
prepare.prepare(params)
for v in params.variant_names:
    train.train(params, v, progress=False)
    select.select(params, v)
    evaluate.evaluate(params, v)
    export.export(params, v)
print(time.perf_counter() - t0)
"""


def make_copy(dest: Path, quick: bool) -> Path:
    import yaml

    for name in ("flows", "tasks", "gan_models"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("dvc.yaml", ".gitignore"):
        shutil.copy(ROOT / name, dest / name)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    if quick:
        params["train"]["steps"] //= 10
        params["train"]["checkpoint_every"] //= 10
        for v in params["train"]["variants"].values():
            if v and "steps" in v:
                v["steps"] //= 10
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run = lambda *a: subprocess.run(a, cwd=dest, check=True, capture_output=True)  # noqa: E731
    run("git", "init", "-q")
    run("git", "-c", "user.email=b@b", "-c", "user.name=b", "add", "-A")
    run("git", "-c", "user.email=b@b", "-c", "user.name=b", "commit", "-qm", "bench")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    return dest


def timed(cmd: list[str], cwd: Path, env: dict) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{p.stdout[-2000:]}\n{p.stderr[-3000:]}")
    return time.perf_counter() - t, p.stdout


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        a = make_copy(tmp / "flow", args.quick)
        b = make_copy(tmp / "direct", args.quick)
        bin_dir = str(Path(sys.executable).parent)
        base = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        env_a = {**base, "PREFECT_HOME": str(tmp / "prefect"), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow.db",
                 "PYTHONPATH": str(a)}
        env_b = {**base, "PYTHONPATH": str(b)}
        flow_s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet"], a, env_a)
        direct_out = timed([sys.executable, "-c", DIRECT], b, env_b)
        direct_s = direct_out[0]
        in_process = float(direct_out[1].strip().splitlines()[-1])
        rerun_s, out = timed([sys.executable, "-m", "flows", "run", "--quiet"], a, env_a)
        assert "nothing to do" in out, out
        forced_s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet", "--force-flow"], a, env_a)
        repro_s, out = timed([sys.executable, "-m", "dvc", "repro"], a, env_a)
        assert "Running stage" not in out, out
        status_s, _ = timed([sys.executable, "-m", "dvc", "status"], a, env_a)
    over = flow_s - direct_s
    print(f"config: {'params.yaml with a tenth of the steps (--quick)' if args.quick else 'the default params.yaml'}\n")
    print("| what | wall time (s) |")
    print("|---|---|")
    print(f"| `python -m flows run` (Prefect + MLflow + DVC commit), fresh stores | {flow_s:.1f} |")
    print(f"| the stage functions called directly, one process | {direct_s:.1f} (of which stages {in_process:.1f}) |")
    print(f"| **overhead** | **{over:.1f} s = {100 * over / flow_s:.1f}% of the pipeline's wall time** |")
    print(f"| no-change `python -m flows run` | {rerun_s:.1f} |")
    print(f"| no-change `python -m flows run --force-flow` (through Prefect, every stage skips) | {forced_s:.1f} |")
    print(f"| no-change `dvc repro` | {repro_s:.1f} |")
    print(f"| `dvc status` | {status_s:.1f} |")


if __name__ == "__main__":
    main()
