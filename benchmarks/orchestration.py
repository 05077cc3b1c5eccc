"""Orchestration overhead: the whole pipeline through `python -m flows run` (Prefect flow, MLflow
tracking, DVC recording) against the sum of its stage functions called directly in one process
(no Prefect, MLflow or DVC), on the default config; then a no-change rerun of both `flows run`
and `dvc repro`.

Each run gets its own fresh copy of the project (fresh PREFECT_HOME and MLflow store); the two
sides alternate (flow, direct, flow, direct, ...) so that slow phases of a shared machine fall on
both.  Besides the wall times it compares the training time of every variant inside the flow
(``train/seconds`` from MLflow) with the same stage called directly.

    python benchmarks/orchestration.py            # the default params.yaml, 2 pairs (about 25 minutes)
    python benchmarks/orchestration.py --quick    # a tenth of the training steps, 3 pairs
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DIRECT = """
import json, sys, time
t0 = time.perf_counter()
from tasks.config import load_params
from tasks import prepare, train, select, evaluate, export
params = load_params("params.yaml")
prepare.prepare(params)
train_s = {}
for v in params.variant_names:
    train_s[v] = train.train(params, v, progress=False)["seconds"]
    select.select(params, v)
    evaluate.evaluate(params, v)
    export.export(params, v)
print(json.dumps({"stages": time.perf_counter() - t0, "train": train_s}))
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


def flow_train_seconds(tracking_uri: str) -> dict[str, float]:
    """train/seconds of every variant's child run of the (only) pipeline run in the store."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri)
    exps = [e.experiment_id for e in client.search_experiments()]
    return {r.data.tags["variant"]: r.data.metrics["train/seconds"] for r in client.search_runs(exps)
            if "variant" in r.data.tags and "train/seconds" in r.data.metrics}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--pairs", type=int, default=None, help="flow/direct pairs, alternated (default 2; 3 with --quick)")
    args = ap.parse_args()
    pairs = args.pairs or (3 if args.quick else 2)
    flows_s, directs_s, stages_s, train_flow, train_direct = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bin_dir = str(Path(sys.executable).parent)
        base = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        for i in range(pairs):
            a = make_copy(tmp / f"flow{i}", args.quick)
            b = make_copy(tmp / f"direct{i}", args.quick)
            uri = f"sqlite:///{tmp}/mlflow{i}.db"
            env_a = {**base, "PREFECT_HOME": str(tmp / f"prefect{i}"), "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": str(a)}
            env_b = {**base, "PYTHONPATH": str(b)}
            # Alternate which side goes first, so neither always runs on a warmer machine.
            order = [("flow", a, env_a), ("direct", b, env_b)]
            for side, cwd, env in (order if i % 2 == 0 else order[::-1]):
                if side == "flow":
                    s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet"], cwd, env)
                    flows_s.append(s)
                    train_flow.append(flow_train_seconds(uri))
                else:
                    s, out = timed([sys.executable, "-c", DIRECT], cwd, env)
                    directs_s.append(s)
                    rec = json.loads(out.strip().splitlines()[-1])
                    stages_s.append(rec["stages"])
                    train_direct.append(rec["train"])
            print(f"pair {i + 1}: flow {flows_s[-1]:.1f} s, direct {directs_s[-1]:.1f} s", file=sys.stderr, flush=True)
        rerun_s, out = timed([sys.executable, "-m", "flows", "run", "--quiet"], a, env_a)
        assert "nothing to do" in out, out
        forced_s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet", "--force-flow"], a, env_a)
        repro_s, out = timed([sys.executable, "-m", "dvc", "repro"], a, env_a)
        assert "Running stage" not in out, out
        status_s, _ = timed([sys.executable, "-m", "dvc", "status"], a, env_a)
    med = statistics.median
    flow_s, direct_s = med(flows_s), med(directs_s)
    over = flow_s - direct_s
    print(f"config: {'params.yaml with a tenth of the steps (--quick)' if args.quick else 'the default params.yaml'}; "
          f"{pairs} alternated pairs, medians\n")
    print("| what | wall time (s) | every run (s) |")
    print("|---|---|---|")
    print(f"| `python -m flows run` (Prefect + MLflow + DVC commit), fresh stores | {flow_s:.1f} | "
          f"{', '.join(f'{x:.1f}' for x in flows_s)} |")
    print(f"| the stage functions called directly, one process | {direct_s:.1f} | "
          f"{', '.join(f'{x:.1f}' for x in directs_s)} (stages {', '.join(f'{x:.1f}' for x in stages_s)}) |")
    print(f"| **overhead** | **{over:.1f} s = {100 * over / flow_s:.1f}% of the pipeline's wall time** | |")
    print(f"| no-change `python -m flows run` | {rerun_s:.1f} | |")
    print(f"| no-change `python -m flows run --force-flow` (through Prefect, every stage skips) | {forced_s:.1f} | |")
    print(f"| no-change `dvc repro` | {repro_s:.1f} | |")
    print(f"| `dvc status` | {status_s:.1f} | |")
    print("\nTraining time of each variant inside the flow and called directly (medians):\n")
    print("| variant | in the flow (s) | direct (s) | ratio |")
    print("|---|---|---|---|")
    for v in sorted(train_direct[0]):
        f = med([t[v] for t in train_flow])
        d = med([t[v] for t in train_direct])
        print(f"| {v} | {f:.1f} | {d:.1f} | {f / d:.2f} |")


if __name__ == "__main__":
    main()
