"""DVC around the pipeline: the default local remote round-trips data and models, and DVC
experiments (`dvc exp run -S ...`) run variations whose metrics `dvc exp show` lists."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY, copy_project, venv_path

pytestmark = pytest.mark.slow

ONE = {**TINY, "train": {**TINY["train"], "variants": {"mlp": TINY["train"]["variants"]["mlp"]}},
       "tracking": {"enabled": False}}


def _dvc(cwd, *args, ok=True):
    env = {**os.environ, "PATH": venv_path(), "PYTHONPATH": str(cwd) + os.pathsep + str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600, env=env)
    if ok:
        assert proc.returncode == 0, f"dvc {' '.join(args)}: " + proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc


def _git(cwd, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=cwd, check=True,
                   capture_output=True)


def _hashes(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for d in ("data", "models", "samples") for p in sorted((root / d).rglob("*")) if p.is_file()}


@pytest.fixture
def repo(tmp_path):
    proj = copy_project(tmp_path / "proj", ONE)
    shutil.copy(ROOT / ".dvc" / "config", proj / ".dvc" / "config")  # the project's default remote
    _dvc(proj, "repro")
    _git(proj, "add", "-A")
    _git(proj, "commit", "-qm", "baseline")
    return proj


def test_default_local_remote_round_trips_data_and_models(repo):
    storage = repo.parent / "dvc-storage"  # ../dvc-storage, as .dvc/config says
    before = _hashes(repo)
    assert len(before) > 10
    _dvc(repo, "push")
    assert storage.is_dir() and sum(1 for p in storage.rglob("*") if p.is_file()) >= 10
    for d in ("data", "models", "samples"):
        shutil.rmtree(repo / d)
    shutil.rmtree(repo / ".dvc" / "cache")
    _dvc(repo, "pull")
    assert _hashes(repo) == before
    status = _dvc(repo, "status")
    assert "up to date" in status.stdout


def test_dvc_experiment_runs_a_variation_listed_beside_the_baseline(repo):
    base = json.loads((repo / "metrics" / "mlp.json").read_text())
    _dvc(repo, "exp", "run", "-S", "train.batch_size=8", "--name", "smaller-batch")
    shown = json.loads(_dvc(repo, "exp", "show", "--json").stdout)
    rows = {}
    for commit in shown:
        rows["baseline"] = commit
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                rows[rev.get("name") or exp.get("name")] = rev
    assert "smaller-batch" in rows, shown

    def fid_and_batch(row):
        data = row["data"]
        m = data["metrics"]["metrics/mlp.json"]["data"]
        p = data["params"]["params.yaml"]["data"]
        return m["fid"], p["train"]["batch_size"]
    assert fid_and_batch(rows["baseline"]) == (base["fid"], 16)
    fid, batch = fid_and_batch(rows["smaller-batch"])
    assert batch == 8 and fid != base["fid"]
    # the workspace now holds the experiment's results
    assert json.loads((repo / "metrics/mlp.json").read_text())["fid"] == fid


def test_tracking_store_survives_dvc_temporary_experiment_folders(tmp_path, monkeypatch):
    from tasks.config import Params
    from tasks.reporting.tracking import tracking_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI")
    tmp_exp = tmp_path / "proj" / ".dvc" / "tmp" / "exps" / "tmpab12cd"
    tmp_exp.mkdir(parents=True)
    assert tracking_uri(Params(), tmp_exp) == f"sqlite:///{(tmp_path / 'proj' / 'mlflow.db').resolve()}"
    assert tracking_uri(Params(), tmp_path / "proj") == f"sqlite:///{(tmp_path / 'proj' / 'mlflow.db').resolve()}"
