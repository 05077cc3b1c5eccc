"""Studies: every variant over several seeds in one run (``seeds``), end to end on ring data at
tens of steps: the cells' files, the comparison, MLflow's nesting, a killed study resumed, a seed
added, a Dask cluster, ``dvc repro`` against ``flows run``, and bad study settings."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, cli, copy_project, venv_path

pytestmark = pytest.mark.slow

STUDY = {
    "seed": 0, "seeds": [0, 1], "device": "cpu",
    "prepare": {"dataset": "ring", "n_points": 2000},
    "train": {"steps": 40, "batch_size": 64, "checkpoint_every": 20, "log_every": 10, "parallel": 1, "threads": 1,
              "amp": "off",
              "variants": {"mlp": {"generator": {"hidden": [32]}, "discriminator": {"hidden": [32]}},
                           "wide": {"preset": "mlp", "generator": {"hidden": [64]},
                                    "discriminator": {"hidden": [64]}}}},
    "select": {"n_samples": 400},
    "evaluate": {"n_samples": 800},
    "export": {"grid_size": 16, "n_images": 2, "n_array": 50, "interpolation_steps": 4},
    "tracking": {"experiment": "study"},
}
CELLS = [f"{v}/seed_{s}" for v in ("mlp", "wide") for s in (0, 1)]


def _project(path: Path, doc: dict) -> Path:
    proj = copy_project(path, doc)
    proc = cli("dvc-yaml", cwd=proj)  # the study's own dvc.yaml: a matrix over variants and seeds
    assert proc.returncode == 0, proc.stderr
    return proj


def _aggregates(uri: str) -> dict[str, dict[str, float]]:
    """The newest study's variant runs in MLflow: their logged aggregates, by variant."""
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    exp = c.get_experiment_by_name("study")
    runs = c.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    out = {}
    for r in runs:
        if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id:
            assert r.data.tags.get("study") == "true" and r.info.status == "FINISHED"
            seeds = [s for s in runs if s.data.tags.get("mlflow.parentRunId") == r.info.run_id]
            assert sorted(s.data.tags["seed"] for s in seeds) == ["0", "1"]
            assert all(s.info.status == "FINISHED" and "modes_covered" in s.data.metrics for s in seeds)
            out[r.data.tags["variant"]] = dict(r.data.metrics)
    return out


def _results(proj: Path) -> dict[str, str]:
    """The files a study leaves whose bytes must not depend on how it was run."""
    files = [f"metrics/{c}.json" for c in CELLS] + ["metrics/mlp.json", "metrics/wide.json"]
    files += [f"models/{c}/train/index.json" for c in CELLS]
    out = {f: (proj / f).read_text() for f in files}
    record = json.loads((proj / "reports/study/study.json").read_text())
    out["study"] = json.dumps({k: record[k] for k in ("summaries", "tests", "order", "expected_best", "bands")})
    return out


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted 2-variant x 2-seed study through `flows run`."""
    base = tmp_path_factory.mktemp("study")
    proj = _project(base / "proj", STUDY)
    uri = f"sqlite:///{base / 'mlflow.db'}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proj, uri, proc.stdout


def test_a_study_runs_every_cell_and_compares_the_variants(finished):
    proj, uri, stdout = finished
    from gan_models import stats as S

    for c in CELLS:
        assert json.loads((proj / f"metrics/{c}.json").read_text())["n_samples"] == 800
        assert (proj / f"samples/{c}/export.json").is_file()
    # the aggregates are the statistics of the cells' values (independently recomputed here)
    for v in ("mlp", "wide"):
        agg = json.loads((proj / f"metrics/{v}.json").read_text())
        vals = [json.loads((proj / f"metrics/{v}/seed_{s}.json").read_text())["reverse_kl"] for s in (0, 1)]
        assert agg["n"] == 2 and agg["reverse_kl_mean"] == pytest.approx(sum(vals) / 2, rel=1e-12)
        assert agg["reverse_kl_median"] == pytest.approx(sum(vals) / 2, rel=1e-12)
        assert agg["reverse_kl_std"] == pytest.approx(abs(vals[0] - vals[1]) / 2 ** 0.5, rel=1e-12)
        assert (agg["reverse_kl_ci_low"], agg["reverse_kl_ci_high"]) == pytest.approx(S.bootstrap_ci(vals))
    for f in ("study.md", "strip.png", "expected_best.png", "bands.png"):
        assert (proj / "reports/study" / f).stat().st_size > 0
    md = (proj / "reports/study/study.md").read_text()
    assert "2 seeds per variant (0, 1)" in md and "mlp 40, wide 40" in md and "800 samples" in md
    assert "Pairwise" in stdout and "[95% CI]" in stdout
    # MLflow: pipeline run -> variant runs with the aggregates -> seed runs
    agg = _aggregates(uri)
    for v in ("mlp", "wide"):
        mine = json.loads((proj / f"metrics/{v}.json").read_text())
        assert agg[v]["n"] == 2
        for k in ("reverse_kl_mean", "reverse_kl_ci_low", "reverse_kl_ci_high", "reverse_kl_std", "fid_points_mean"):
            assert agg[v][k] == pytest.approx(mine[k], rel=1e-12)
    # `dvc metrics show` lists the per-variant aggregates
    proc = subprocess.run([sys.executable, "-m", "dvc", "metrics", "show", "--json"], cwd=proj, capture_output=True,
                          text=True, env={**os.environ, "PATH": venv_path()})
    shown = json.loads(proc.stdout)
    assert any("metrics/mlp.json" in json.dumps(v) for v in shown.values()), proc.stdout[:2000]
    # `flows compare` ranks the variants with intervals from the seed runs in MLflow
    proc = cli("compare", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "[95% CI]" in proc.stdout and "Pairwise" in proc.stdout and "mlp seed 1" in proc.stdout
    assert "Which differences" in (proj / "reports/compare.md").read_text()
    # what does not apply to a study says so (exit 2) instead of doing something else
    from mlflow.tracking import MlflowClient

    c = MlflowClient(uri)
    seed_run = next(r for r in c.search_runs([c.get_experiment_by_name("study").experiment_id]) if "cell" in r.data.tags)
    proc = cli("rerun", seed_run.info.run_id, cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2 and "belongs to a study" in proc.stderr, proc.stderr[-2000:]
    proc = cli("human-eval", "--variant", "mlp", "--score", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 2 and "a study" in proc.stderr, proc.stderr[-2000:]


def test_a_killed_study_resumes_only_its_missing_cells_and_ends_identical(finished, tmp_path):
    ref, ref_uri, _ = finished
    proj = _project(tmp_path / "proj", STUDY)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": venv_path(),
           "PYTHONPATH": os.pathsep.join([str(proj), str(ROOT)])}
    p = subprocess.Popen([sys.executable, "-m", "flows", "run", "--quiet"], cwd=proj, env=env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    first = proj / "metrics/mlp/seed_0.json"
    t0 = time.time()
    while not first.exists() and time.time() - t0 < 300 and p.poll() is None:
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the flow and the Prefect server it started
    p.wait()
    assert first.exists() and not (proj / "reports/study/study.json").exists()
    done_before = {c: (proj / f"models/{c}/train/run.json").stat().st_mtime_ns
                   for c in CELLS if (proj / f"models/{c}/train/run.json").exists()}
    assert "mlp/seed_0" in done_before and len(done_before) < len(CELLS)
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for c, mtime in done_before.items():  # finished cells were not trained again
        assert (proj / f"models/{c}/train/run.json").stat().st_mtime_ns == mtime, c
    assert _results(proj) == _results(ref)
    assert _aggregates(uri) == _aggregates(ref_uri)


def test_adding_a_seed_trains_only_the_new_cells(finished, tmp_path):
    import shutil

    ref, _, _ = finished
    proj = tmp_path / "proj"
    shutil.copytree(ref, proj, symlinks=True)
    before = {c: (proj / f"models/{c}/train/run.json").stat().st_mtime_ns for c in CELLS}
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = cli("run", "--quiet", "--set", "seeds=[0,1,2]", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    for c, mtime in before.items():
        assert (proj / f"models/{c}/train/run.json").stat().st_mtime_ns == mtime, c
    for v in ("mlp", "wide"):
        assert (proj / f"metrics/{v}/seed_2.json").is_file()
        assert json.loads((proj / f"metrics/{v}.json").read_text())["n"] == 3
    assert "3 seeds per variant (0, 1, 2)" in (proj / "reports/study/study.md").read_text()


def test_a_study_on_a_dask_cluster_gives_the_same_files(finished, tmp_path):
    from distributed import LocalCluster

    ref, _, _ = finished
    proj = _project(tmp_path / "proj", {**STUDY, "train": {**STUDY["train"], "parallel": 2}})
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        proc = cli("run", "--quiet", "--dask-address", cluster.scheduler_address, cwd=proj,
                   env={"MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        prefixes = {k: dict(v.all_durations) for k, v in cluster.scheduler.task_prefixes.items()}
        assert prefixes.get("train_task", {}).get("compute", 0) > 0, prefixes
    assert _results(proj) == _results(ref)


def test_dvc_repro_runs_the_study_cell_by_cell_and_leaves_the_flows_lock(finished, tmp_path):
    ref, _, _ = finished
    proj = _project(tmp_path / "proj", {**STUDY, "tracking": {"enabled": False}})
    proc = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=proj, capture_output=True, text=True,
                          timeout=600, env={**os.environ, "PATH": venv_path()})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "Running stage 'train@mlp-0'" in proc.stdout and "Running stage 'study'" in proc.stdout
    assert (proj / "dvc.lock").read_text() == (ref / "dvc.lock").read_text()
    assert _results(proj) == _results(ref)


@pytest.mark.parametrize("seeds, why", [
    ("[]", "non-empty list"), ("[1,1]", "distinct"), ("[0,a]", "integers"), ("[0,1.5]", "integers"),
    ("[3]", "at least 2 seeds"), (str(list(range(17))).replace(" ", ""), "at most 16 seeds")])
def test_bad_study_settings_exit_2_before_any_work(tmp_path, seeds, why):
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "params.yaml").write_text(json.dumps(STUDY))
    proc = cli("run", "--set", f"seeds={seeds}", cwd=proj)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "seeds" in proc.stderr and why in proc.stderr, proc.stderr[-2000:]
    assert sorted(p.name for p in proj.iterdir()) == ["params.yaml"]  # nothing made
