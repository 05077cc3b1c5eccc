"""Faults with real processes: SIGKILL mid-training, a second run in the same folder, an
unreachable tracking server."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY, venv_path, write_params
from gan_models import checkpoint as ck

pytestmark = pytest.mark.slow

LONG = {**TINY, "train": {**TINY["train"], "steps": 300, "checkpoint_every": 50, "log_every": 25,
                          "variants": {"dcgan": {"z_dim": 8, "generator": {"width": 32}, "discriminator": {"width": 32}}}}}


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "PATH": venv_path()}


def _train_cmd():
    return [sys.executable, "-m", "flows", "train", "--variant", "dcgan", "--quiet"]


def _final_weights(folder):
    d = folder / "models" / "dcgan" / "train"
    entry = ck.read_index(d)[-1]
    assert entry["step"] == 300
    return ck.load_checkpoint(d / entry["file"], entry["sha256"])


def test_sigkill_during_training_then_rerun_is_bit_identical(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    for folder in (straight, killed):
        folder.mkdir()
        write_params(folder / "params.yaml", LONG)
        subprocess.run([sys.executable, "-m", "flows", "prepare", "--quiet"], cwd=folder, env=_env(), check=True,
                       capture_output=True)
    subprocess.run(_train_cmd(), cwd=straight, env=_env(), check=True, capture_output=True)

    proc = subprocess.Popen(_train_cmd(), cwd=killed, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    index = killed / "models" / "dcgan" / "train" / ck.INDEX
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if index.exists() and json.loads(index.read_text())["checkpoints"]:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "training finished before it could be killed; make LONG longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = [e["step"] for e in ck.read_index(killed / "models" / "dcgan" / "train")]
    assert done and done[-1] < 300
    rerun = subprocess.run(_train_cmd(), cwd=killed, env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert json.loads(rerun.stdout)["steps_trained"] == 300 - done[-1]  # resumed, not restarted
    a, b = _final_weights(straight), _final_weights(killed)
    for part in ("G", "D"):
        for k in a[part]:
            assert torch.equal(a[part][k], b[part][k]), (part, k)
    hist_a = (straight / "models/dcgan/train/history.jsonl").read_text()
    hist_b = (killed / "models/dcgan/train/history.jsonl").read_text()
    assert hist_a == hist_b


def test_a_second_run_in_the_same_folder_is_refused(project):
    from tasks.runtime import project_lock

    with project_lock(project):
        proc = subprocess.run([sys.executable, "-m", "flows", "run"], cwd=project, env=_env(), capture_output=True,
                              text=True, timeout=300)
    assert proc.returncode == 2
    assert f"another pipeline run (pid {os.getpid()})" in proc.stderr
    assert not (project / "data").exists() and not (project / "models").exists()


def test_unreachable_tracking_server_fails_fast_before_any_work(project):
    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**_env(), "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{port}"}
    t = time.time()
    proc = subprocess.run([sys.executable, "-m", "flows", "run"], cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"cannot use the MLflow tracking store 'http://127.0.0.1:{port}'" in proc.stderr
    assert "--set tracking.enabled=false" in proc.stderr and "Traceback" not in proc.stderr
    assert time.time() - t < 120
    assert not (project / "data").exists() and not (project / "models").exists()


@pytest.mark.parametrize("parallel", [1, 2], ids=["on-the-flow-thread", "worker-processes"])
def test_divergence_fails_that_variant_only_with_the_reason_in_mlflow(tmp_path, isolated_stores, parallel):
    from mlflow.tracking import MlflowClient

    from conftest import cli, copy_project

    params = {**TINY, "train": {**TINY["train"], "parallel": parallel, "variants": {
        "mlp": TINY["train"]["variants"]["mlp"],
        "boom": {"preset": "mlp", "lr_g": 1e30, "lr_d": 1e30, "z_dim": 8, "generator": {"hidden": [32]},
                 "discriminator": {"hidden": [32]}}}}}
    proj = copy_project(tmp_path / "proj", params)
    uri = f"sqlite:///{isolated_stores / 'div.db'}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "boom           FAILED: train failed: DivergenceError: training diverged at step 5" in proc.stdout
    assert (proj / "metrics" / "mlp.json").exists() and not (proj / "metrics" / "boom.json").exists()
    client = MlflowClient(uri)
    runs = {r.data.tags.get("variant"): r for r in client.search_runs([client.get_experiment_by_name("tests").experiment_id])}
    assert runs["boom"].info.status == "FAILED"
    assert "diverged at step 5: loss/D is not finite" in runs["boom"].data.tags["failure_reason"]
    assert runs["mlp"].info.status == "FINISHED" and "fid" in runs["mlp"].data.metrics
    assert runs[None].info.status == "FAILED"  # the parent run


def _mount_tmpfs(path, size):
    path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def test_disk_full_during_training_keeps_the_last_good_checkpoint(project, monkeypatch):
    """A real size-limited filesystem (tmpfs) under models/ where the machine allows mounting;
    otherwise the ENOSPC error is injected at the write."""
    import errno

    from tasks.layout import Layout
    from tasks.config import load_params
    from tasks.prepare import prepare
    from tasks.train import train

    write_params(project / "params.yaml", {**TINY, "train": {**TINY["train"], "steps": 40, "checkpoint_every": 5,
                                                             "variants": {"mlp": {"z_dim": 8}}}})
    params = load_params(project / "params.yaml")
    prepare(params)
    mounted = _mount_tmpfs(project / "models", "1m")
    try:
        if not mounted:
            real_fsync, calls = os.fsync, []

            def failing_fsync(fd):
                calls.append(fd)
                if len(calls) > 4:  # two checkpoints (+ index each) fit
                    raise OSError(errno.ENOSPC, "No space left on device")
                real_fsync(fd)
            monkeypatch.setattr(os, "fsync", failing_fsync)
        with pytest.raises(OSError, match="no space left on the device while writing .*models/mlp/train") as e:
            train(params, "mlp", progress=False)
        assert e.value.errno == errno.ENOSPC
        d = Layout().train_dir("mlp")
        entries = ck.read_index(d)
        assert entries, "no checkpoint fitted at all"
        for entry in entries:  # every recorded checkpoint is complete and verifies
            ck.load_checkpoint(d / entry["file"], entry["sha256"])
        assert not list(d.glob(".*tmp*")), "a temporary file was left behind"
    finally:
        if mounted:
            subprocess.run(["umount", str(project / "models")], check=False)


def test_two_clones_running_at_once_share_one_mlflow_store(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    from conftest import copy_project

    params = {**TINY, "train": {**TINY["train"], "variants": {"mlp": TINY["train"]["variants"]["mlp"]}}}
    uri = f"sqlite:///{isolated_stores / 'shared.db'}"
    env = {**_env(), "MLFLOW_TRACKING_URI": uri}
    clones = [copy_project(tmp_path / name, params) for name in ("a", "b")]
    procs = [subprocess.Popen([sys.executable, "-m", "flows", "run", "--quiet"], cwd=c, env={**env, "PYTHONPATH": str(c)},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in clones]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    assert len(runs) == 4 and all(r.info.status == "FINISHED" for r in runs)  # 2 parents + 2 children
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert [r.data.metrics["fid"] for r in children][0] == pytest.approx(children[1].data.metrics["fid"], rel=1e-12)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _mlflow_server(backend: str, port: int, cwd) -> subprocess.Popen:
    """A real `mlflow server` on loopback, answering /health."""
    import urllib.request

    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "PATH": venv_path()}
    server = subprocess.Popen([sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
                               "--backend-store-uri", backend, "--default-artifact-root", str(cwd / "artifacts"),
                               "--workers", "1"], env=env, cwd=cwd, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    t0 = time.time()
    while True:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2).status == 200:
                return server
        except OSError:
            pass
        assert server.poll() is None, "mlflow server exited"
        assert time.time() - t0 < 180, "mlflow server did not answer /health within 180 s"
        time.sleep(0.5)


def _stop(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGKILL)  # the server and its worker: the store goes away at once
    server.wait()


def test_tracking_failure_mid_run_does_not_stop_training(tmp_path):
    """A real tracking server killed while a variant trains: the stages go on and write every file,
    the run says the log is incomplete, and once the server is back the same command logs the
    finished stages from their files (the whole history included), instead of skipping."""
    from mlflow.tracking import MlflowClient

    from conftest import cli, copy_project

    params = {**LONG, "train": {**LONG["train"], "parallel": 2, "variants": {
        **LONG["train"]["variants"], "mlp": TINY["train"]["variants"]["mlp"]}}}
    proj = copy_project(tmp_path / "proj", params)
    backend = f"sqlite:///{tmp_path / 'server.db'}"
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    server = _mlflow_server(backend, port, tmp_path)
    env = {**_env(), "MLFLOW_TRACKING_URI": uri, "PYTHONPATH": f"{proj}{os.pathsep}{ROOT}"}
    run = subprocess.Popen([sys.executable, "-m", "flows", "run", "--quiet"], cwd=proj, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        index = proj / "models" / "dcgan" / "train" / ck.INDEX
        deadline = time.time() + 300
        while time.time() < deadline and run.poll() is None and not index.exists():
            time.sleep(0.05)
        assert run.poll() is None, "the run finished before the server could be stopped"
        _stop(server)
        out, err = run.communicate(timeout=600)
    finally:
        if server.poll() is None:
            _stop(server)
    assert run.returncode == 0, err[-3000:]
    assert "MLflow is unreachable" in err
    for v in ("dcgan", "mlp"):  # every stage wrote its files
        assert json.loads((proj / "metrics" / f"{v}.json").read_text())["fid"] > 0
        assert (proj / "samples" / v / "grid.png").exists()
    history = [json.loads(line)["step"] for line in (proj / "models/dcgan/train/history.jsonl").read_text().splitlines()]
    assert history == list(range(25, 301, 25))

    server = _mlflow_server(backend, port, tmp_path)
    try:
        again = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
        assert again.returncode == 0, again.stderr[-3000:]
        assert "nothing to do" not in again.stdout  # not logged completely: the flow runs again
        assert "Pipeline finished." in again.stdout
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("tests")
        parents = [r for r in client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
                   if "mlflow.parentRunId" not in r.data.tags]
        newest = parents[0]
        assert newest.info.status == "FINISHED" and newest.data.tags.get("pipeline_state")
        children = {r.data.tags["variant"]: r for r in client.search_runs(
            [exp.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{newest.info.run_id}'")}
        assert sorted(children) == ["dcgan", "mlp"]
        logged = [m.step for m in client.get_metric_history(children["dcgan"].info.run_id, "D/real")]
        assert sorted(logged) == history  # logged from history.jsonl: training did not rerun
        fid = json.loads((proj / "metrics/dcgan.json").read_text())["fid"]
        assert children["dcgan"].data.metrics["fid"] == pytest.approx(fid, rel=1e-12)
        # Now it is logged: a third run has nothing to do.
        third = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
        assert third.returncode == 0 and "nothing to do" in third.stdout, third.stderr[-2000:]
    finally:
        _stop(server)


def test_divergence_error_survives_a_process_boundary():
    """Variants run in worker processes: the error reaches the flow whole (pickled and back)."""
    import pickle

    from gan_models.training import DivergenceError

    e = pickle.loads(pickle.dumps(DivergenceError(7, "loss/G")))
    assert (e.step, e.what, str(e)) == (7, "loss/G", "training diverged at step 7: loss/G is not finite")
