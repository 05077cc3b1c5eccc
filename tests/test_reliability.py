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
    from tasks.common import ProjectLock

    with ProjectLock(project):
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
