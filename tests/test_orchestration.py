"""Scheduled runs and distributed variants against real servers: a temporary Prefect server on
loopback (deployments with a cron schedule, served and through a work pool) and a local Dask
cluster with two worker processes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, TINY, cli, copy_project, venv_path

pytestmark = pytest.mark.slow

TWO = {**TINY, "train": {**TINY["train"], "threads": 1}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str, proc=None):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: process exited with {proc.returncode}: {proc.stdout.read()[-3000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """`prefect server start` on 127.0.0.1 with its own PREFECT_HOME; yields the env to reach it."""
    import urllib.request

    home = tmp_path_factory.mktemp("prefect-server")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PATH": venv_path()}
    proc = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    url = f"http://127.0.0.1:{port}/api"

    def healthy():
        try:
            return urllib.request.urlopen(url + "/health", timeout=2).status == 200
        except OSError:
            return False

    try:
        _wait(healthy, 120, "the Prefect server", proc)
        yield {"PREFECT_HOME": str(home), "PREFECT_API_URL": url, "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
               "PREFECT_LOGGING_LEVEL": "WARNING"}
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def _prefect_env(server: dict, proj: Path, uri: str) -> dict:
    return {**os.environ, **server, "MLFLOW_TRACKING_URI": uri, "PATH": venv_path(),
            "PYTHONPATH": str(proj) + os.pathsep + str(ROOT)}


async def _newest_pipeline_run(client):
    """The newest flow run of the pipeline (named after its params file), asked of the server
    itself: its unfiltered listing is one page of runs in id order, and the cron deployments of
    this module's other tests fill it with scheduled runs."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName
    from prefect.client.schemas.sorting import FlowRunSort

    runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="params.yaml")),
                                       sort=FlowRunSort.START_TIME_DESC, limit=1)
    assert runs, "no pipeline flow run on the server"
    return runs[0]


def _flow_run_state(server: dict, deployment: str, timeout: float = 300):
    """Trigger a run of ``deployment`` and wait for a final state; returns (state name, deployment)."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    async def go():
        async with get_client() as client:
            dep = await client.read_deployment_by_name(deployment)
            run = await client.create_flow_run_from_deployment(dep.id)
            t0 = time.time()
            while time.time() - t0 < timeout:
                fr = await client.read_flow_run(run.id)
                if fr.state and fr.state.is_final():
                    return fr.state.name, dep
                await asyncio.sleep(2)
            return "TIMEOUT", dep

    with temporary_settings({PREFECT_API_URL: server["PREFECT_API_URL"]}):
        return asyncio.run(go())


def test_served_deployment_with_cron_runs_the_pipeline(tmp_path, prefect_server, isolated_stores):
    proj = copy_project(tmp_path / "proj", {**TWO, "train": {**TWO["train"], "variants": {
        "mlp": TINY["train"]["variants"]["mlp"]}}})
    uri = f"sqlite:///{isolated_stores / 'served.db'}"
    env = _prefect_env(prefect_server, proj, uri)
    serve = subprocess.Popen([sys.executable, "-m", "flows", "serve", "--cron", "0 3 * * *", "--name", "tiny",
                              "--set", "train.steps=10", "--quiet"], cwd=proj, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def deployed():
            r = subprocess.run([sys.executable, "-m", "prefect", "deployment", "ls"], env=env,
                               capture_output=True, text=True)
            return "gan-pipeline/tiny" in r.stdout
        _wait(deployed, 120, "the deployment", serve)
        state, dep = _flow_run_state(prefect_server, "gan-pipeline/tiny")
        assert state == "Completed", (state, serve.stdout.read() if serve.poll() is not None else "")
    finally:
        serve.terminate()
        serve.wait(30)
    # The schedule and the per-deployment parameters are what was asked for.
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
    assert dep.parameters["overrides"] == ["train.steps=10"]
    run = json.loads((proj / "models/mlp/train/run.json").read_text())
    assert run["steps"] == 10
    assert json.loads((proj / "metrics/mlp.json").read_text())["fid"] > 0


def test_prefect_yaml_deploys_to_a_work_pool_and_a_worker_runs_it(tmp_path, prefect_server, isolated_stores):
    proj = copy_project(tmp_path / "proj", {**TWO, "train": {**TWO["train"], "steps": 10, "variants": {
        "mlp": TINY["train"]["variants"]["mlp"]}}})
    import shutil

    shutil.copy(ROOT / "prefect.yaml", proj / "prefect.yaml")
    uri = f"sqlite:///{isolated_stores / 'pool.db'}"
    env = _prefect_env(prefect_server, proj, uri)
    run = lambda *a: subprocess.run([sys.executable, "-m", "prefect", *a], cwd=proj, env=env,  # noqa: E731
                                    capture_output=True, text=True, timeout=300)
    r = run("work-pool", "create", "gan-pipeline", "--type", "process")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run("--no-prompt", "deploy", "--all")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    import threading

    result = {}
    t = threading.Thread(target=lambda: result.update(state=_flow_run_state(prefect_server, "gan-pipeline/nightly")))
    t.start()
    worker = run("worker", "start", "--pool", "gan-pipeline", "--run-once")
    t.join(300)
    assert worker.returncode == 0, worker.stdout[-3000:] + worker.stderr[-3000:]
    state, dep = result["state"]
    assert state == "Completed", worker.stdout[-3000:] + worker.stderr[-3000:]
    assert [s.schedule.cron for s in dep.schedules] == ["0 3 * * *"]
    assert json.loads((proj / "metrics/mlp.json").read_text())["fid"] > 0


def test_dask_cluster_trains_two_variants_like_a_sequential_run(tmp_path, isolated_stores):
    """Two variants on a local Dask cluster (2 worker processes) through the same flow: the same
    files and the same MLflow metrics as a sequential run with the same seeds."""
    from distributed import LocalCluster
    from mlflow.tracking import MlflowClient

    seq = copy_project(tmp_path / "seq", {**TWO, "train": {**TWO["train"], "parallel": 1}})
    par = copy_project(tmp_path / "dask", TWO)
    uri_seq = f"sqlite:///{isolated_stores / 'seq.db'}"
    uri_par = f"sqlite:///{isolated_stores / 'dask.db'}"
    proc = cli("run", "--quiet", cwd=seq, env={"MLFLOW_TRACKING_URI": uri_seq})
    assert proc.returncode == 0, proc.stderr[-3000:]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        proc = cli("run", "--quiet", "--dask-address", cluster.scheduler_address, cwd=par,
                   env={"MLFLOW_TRACKING_URI": uri_par})
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
        # The stages did run on the cluster's workers (not in the flow's process).
        prefixes = {k: dict(v.all_durations) for k, v in cluster.scheduler.task_prefixes.items()}
        for stage in ("train_task", "select_task", "evaluate_task", "export_task"):
            assert prefixes.get(stage, {}).get("compute", 0) > 0, prefixes
    for v in ("mlp", "dcgan"):
        assert (par / f"metrics/{v}.json").read_text() == (seq / f"metrics/{v}.json").read_text()
        assert (par / f"models/{v}/train/index.json").read_text() == (seq / f"models/{v}/train/index.json").read_text()

    def metrics(uri):
        c = MlflowClient(uri)
        exp = c.get_experiment_by_name("tests")
        out = {}
        for r in c.search_runs([exp.experiment_id]):
            if "variant" in r.data.tags:
                assert r.info.status == "FINISHED"
                out[r.data.tags["variant"]] = {k: v for k, v in r.data.metrics.items()  # not timings, CPU use
                                               if not k.startswith(("train/", "system/"))}
        return out
    assert metrics(uri_par) == metrics(uri_seq)


def test_a_pipeline_run_leaves_prefect_artifacts_and_named_runs(tmp_path, prefect_server, isolated_stores):
    """Against a real Prefect server: the flow run is named after its params file and variants,
    task runs after what they do, and the run leaves a metrics table, a summary and a progress
    artifact per training run (from the worker processes of a parallel run), read back through
    Prefect's client."""
    import asyncio

    from mlflow.tracking import MlflowClient
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    proj = copy_project(tmp_path / "proj", TWO)  # two variants, parallel: 2 (worker processes)
    uri = f"sqlite:///{isolated_stores / 'artifacts.db'}"
    proc = subprocess.run([sys.executable, "-m", "flows", "run", "--quiet"], cwd=proj,
                          env=_prefect_env(prefect_server, proj, uri), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    parent = [r for r in MlflowClient(uri).search_runs([MlflowClient(uri).get_experiment_by_name("tests")
                                                        .experiment_id]) if "variant" not in r.data.tags][0]

    async def read():
        async with get_client() as client:
            # the newest: the server is shared by this module's tests, and others ran flows on it
            fr = await _newest_pipeline_run(client)
            only = FlowRunFilter(id=FlowRunFilterId(any_=[fr.id]))
            tasks = await client.read_task_runs(flow_run_filter=only)
            artifacts = await client.read_artifacts(flow_run_filter=only)
            return fr, tasks, artifacts

    with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
        flow_run, task_runs, artifacts = asyncio.run(read())
    assert flow_run.name == "params.yaml: mlp, dcgan"
    assert {"prepare-digits", "train-mlp", "train-dcgan", "select-mlp", "evaluate-dcgan", "export-mlp"} <= \
        {t.name for t in task_runs}
    by_key = {a.key: a for a in artifacts}
    table = by_key["variant-metrics"]
    assert table.type == "table"
    rows = {r["variant"]: r for r in (json.loads(table.data) if isinstance(table.data, str) else table.data)}
    for v in ("mlp", "dcgan"):
        m = json.loads((proj / "metrics" / f"{v}.json").read_text())
        assert rows[v]["fid"] == pytest.approx(m["fid"], abs=1e-4) and rows[v]["status"] == "ok"
        assert rows[v]["selected_step"] == json.loads((proj / "models" / v / "selected" / "selection.json")
                                                      .read_text())["best_step"]
        progress = by_key[f"train-{v}"]
        assert progress.type == "progress" and float(progress.data) == 100.0
    summary = by_key["pipeline-summary"]
    assert summary.type == "markdown" and parent.info.run_id in summary.data and "samples/dcgan/" in summary.data


def test_a_study_leaves_its_ranking_as_a_prefect_table_artifact(tmp_path, prefect_server, isolated_stores):
    """A study (2 variants x 2 seeds) against the real Prefect server: the ranking table artifact
    holds each variant's mean and interval as reports/study/study.json has them, and every cell
    has its own training progress artifact."""
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL, temporary_settings

    proj = copy_project(tmp_path / "proj", {**TWO, "seeds": [0, 1]})
    assert cli("dvc-yaml", cwd=proj).returncode == 0
    uri = f"sqlite:///{isolated_stores / 'study-artifacts.db'}"
    proc = subprocess.run([sys.executable, "-m", "flows", "run", "--quiet"], cwd=proj,
                          env=_prefect_env(prefect_server, proj, uri), capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]

    async def read():
        async with get_client() as client:
            fr = await _newest_pipeline_run(client)
            return await client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[fr.id])))

    with temporary_settings({PREFECT_API_URL: prefect_server["PREFECT_API_URL"]}):
        artifacts = {a.key: a for a in asyncio.run(read())}
    study = json.loads((proj / "reports/study/study.json").read_text())
    table = artifacts["study-ranking"]
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert [r["variant"] for r in rows] == study["order"]
    for r in rows:
        s = study["summaries"][r["variant"]]["fid"]
        assert r["FID [95% CI]"] == f"{s['mean']:.4g} [{s['ci_low']:.4g}, {s['ci_high']:.4g}]"
    assert {f"train-{v}-seed-{s}" for v in ("mlp", "dcgan") for s in (0, 1)} <= set(artifacts)
    assert "Which differences in fid are real" in artifacts["pipeline-summary"].data
