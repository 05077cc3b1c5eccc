"""Orchestration overhead: the whole pipeline through `python -m flows run` (Prefect flow, MLflow
tracking, DVC recording) against the sum of its stage functions called directly in one process
(no Prefect, MLflow or DVC), on the default config; then a no-change rerun of both `flows run`
and `dvc repro`.

Each run gets its own copy of the project and its own PREFECT_HOME and MLflow store: one flow
run with fresh stores (the first run on a machine: Prefect migrates its database, MLflow creates
its tables), one with both stores initialised beforehand (every later run), and the direct
calls.  The three alternate in rotated order over the rounds, so slow phases of a shared machine
fall on all of them.  Besides wall times it compares the training time of every variant inside
the flow (``train/seconds`` from MLflow) with the same stage called directly.

    python benchmarks/orchestration.py            # the default params.yaml, 3 rounds (about 40 minutes)
    python benchmarks/orchestration.py --quick    # a tenth of the training steps
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


INIT_STORES = """
from prefect.client.orchestration import get_client
from mlflow.tracking import MlflowClient
with get_client(sync_client=True) as c:
    c.hello()  # creates and migrates Prefect's database in PREFECT_HOME
MlflowClient().search_experiments(max_results=1)  # creates the MLflow store's tables
"""


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int, default=3, help="rounds of the three runs, their order rotated (default 3)")
    args = ap.parse_args()
    sides = ("fresh", "initialised", "direct")
    wall = {k: [] for k in sides}
    stages_s, train = [], {k: [] for k in sides}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bin_dir = str(Path(sys.executable).parent)
        base = {**os.environ, "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                "PATH": bin_dir + os.pathsep + os.environ["PATH"]}
        for i in range(args.rounds):
            envs, dirs = {}, {}
            for side in sides:
                dirs[side] = make_copy(tmp / f"{side}{i}", args.quick)
                envs[side] = {**base, "PYTHONPATH": str(dirs[side]), "PREFECT_HOME": str(tmp / f"prefect-{side}{i}"),
                              "MLFLOW_TRACKING_URI": f"sqlite:///{tmp}/mlflow-{side}{i}.db"}
            # What a user's second and later runs find: Prefect's database and the MLflow store
            # already created (untimed).
            timed([sys.executable, "-c", INIT_STORES], dirs["initialised"], envs["initialised"])
            order = sides[i % 3:] + sides[:i % 3]  # each side goes first once in three rounds
            for side in order:
                env, cwd = envs[side], dirs[side]
                if side == "direct":
                    s, out = timed([sys.executable, "-c", DIRECT], cwd, env)
                    rec = json.loads(out.strip().splitlines()[-1])
                    stages_s.append(rec["stages"])
                    train["direct"].append(rec["train"])
                else:
                    s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet"], cwd, env)
                    train[side].append(flow_train_seconds(env["MLFLOW_TRACKING_URI"]))
                wall[side].append(s)
            print(f"round {i + 1}: " + ", ".join(f"{k} {wall[k][-1]:.1f} s" for k in sides), file=sys.stderr, flush=True)
        a, env_a = dirs["initialised"], envs["initialised"]
        rerun_s, out = timed([sys.executable, "-m", "flows", "run", "--quiet"], a, env_a)
        assert "nothing to do" in out, out
        forced_s, _ = timed([sys.executable, "-m", "flows", "run", "--quiet", "--force-flow"], a, env_a)
        repro_s, out = timed([sys.executable, "-m", "dvc", "repro"], a, env_a)
        assert "Running stage" not in out, out
        status_s, _ = timed([sys.executable, "-m", "dvc", "status"], a, env_a)
    med = statistics.median
    direct_s = med(wall["direct"])
    runs = lambda xs: ", ".join(f"{x:.1f}" for x in xs)  # noqa: E731
    print(f"config: {'params.yaml with a tenth of the steps (--quick)' if args.quick else 'the default params.yaml'}; "
          f"{args.rounds} rounds, order rotated\n")
    # Two readings of the same runs: medians of each side, and the flow-minus-direct difference
    # within each round (the two ran minutes apart), averaged.  They differ when the machine's
    # speed drifts between rounds by more than the overhead.
    print("| what | wall time (s) | overhead, medians | overhead within each round, mean (s) | every run (s) |")
    print("|---|---|---|---|---|")
    for side, label in (("fresh", "fresh stores (first run: Prefect database and MLflow store created)"),
                        ("initialised", "stores initialised (every later run)")):
        f = med(wall[side])
        diffs = [w - d for w, d in zip(wall[side], wall["direct"])]
        mean_d = statistics.mean(diffs)
        print(f"| `python -m flows run`, {label} | {f:.1f} | **{f - direct_s:.1f} s = {100 * (f - direct_s) / f:.1f}%** "
              f"| {mean_d:.1f} = {100 * mean_d / statistics.mean(wall[side]):.1f}% ({runs(diffs)}) | {runs(wall[side])} |")
    print(f"| the stage functions called directly, one process | {direct_s:.1f} | | | {runs(wall['direct'])} "
          f"(stages {runs(stages_s)}) |")
    print(f"| no-change `python -m flows run` | {rerun_s:.1f} | | | |")
    print(f"| no-change `python -m flows run --force-flow` (through Prefect, every stage skips) | {forced_s:.1f} | | | |")
    print(f"| no-change `dvc repro` | {repro_s:.1f} | | | |")
    print(f"| `dvc status` | {status_s:.1f} | | | |")
    print("\nTraining time of each variant (medians over the rounds):\n")
    print("| variant | flow, fresh stores (s) | flow, stores initialised (s) | direct (s) | ratios to direct |")
    print("|---|---|---|---|---|")
    for v in sorted(train["direct"][0]):
        m = {k: med([t[v] for t in train[k]]) for k in sides}
        print(f"| {v} | {m['fresh']:.1f} | {m['initialised']:.1f} | {m['direct']:.1f} | "
              f"{m['fresh'] / m['direct']:.2f}, {m['initialised'] / m['direct']:.2f} |")


if __name__ == "__main__":
    main()
