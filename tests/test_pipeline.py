"""End to end: the Prefect flow with MLflow tracking and DVC, on the tiny configuration.

These start real processes (a Prefect temporary server, DVC) and take a minute or two.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import os

from conftest import TINY, cli, copy_project, venv_path

pytestmark = pytest.mark.slow


def _dvc(cwd, *args):
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PATH": venv_path()})


def test_flow_run_tracks_in_mlflow_and_agrees_with_dvc(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    proj = copy_project(tmp_path / "proj", TINY)
    uri = f"sqlite:///{isolated_stores / 'e2e.db'}"
    proc = cli("run", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    assert "Pipeline finished." in proc.stdout
    assert "DVC: recorded in dvc.lock" in proc.stdout
    assert "Model registry: gan-generator v1 registered" in proc.stdout  # a model was logged ...
    assert "type hints" not in proc.stderr  # ... without MLflow asking for predict()'s type hints

    # Files of every stage, for both variants.
    for v in ("mlp", "dcgan"):
        m = json.loads((proj / "metrics" / f"{v}.json").read_text())
        assert m["fid"] > 0 and m["extractor"] == "classifier" and m["n_samples"] == 200
        assert (proj / "samples" / v / "grid.png").exists()
        assert (proj / "models" / v / "selected" / "best.pt").exists()

    # MLflow: one parent run, one finished child per variant, with per-step and final metrics.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted(r.data.tags["variant"] for r in children) == ["dcgan", "mlp"]
    for r in children:
        assert r.info.status == "FINISHED"
        assert r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert len(r.data.tags["data_hash"]) == 64 and r.data.tags["code_version"]
        assert {"fid", "is_mean", "loss/D", "loss/G", "D/real", "D/fake", "grad_norm/G", "select/fid"} <= set(r.data.metrics)
        history = client.get_metric_history(r.info.run_id, "D/real")
        assert [h.step for h in history] == [5, 10, 15, 20]
        assert r.data.params["spec.z_dim"] == "8"
        arts = {a.path for a in client.list_artifacts(r.info.run_id, "selection")}
        assert "selection/best.pt" in arts
        metrics_file = json.loads((proj / "metrics" / f"{r.data.tags['variant']}.json").read_text())
        assert r.data.metrics["fid"] == pytest.approx(metrics_file["fid"], rel=1e-12)

    # DVC agrees: nothing to do after the flow.
    status = _dvc(proj, "status")
    assert status.returncode == 0 and "up to date" in status.stdout, status.stdout + status.stderr
    repro = _dvc(proj, "repro")
    assert repro.returncode == 0, repro.stderr
    assert "Running stage" not in repro.stdout, repro.stdout

    # A second run with nothing changed has nothing to do: it does not even start Prefect.
    before = (proj / "models/mlp/train/step_0000020.pt").stat().st_mtime_ns
    proc = cli("run", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "nothing to do" in proc.stdout and "fid=" in proc.stdout
    assert len(client.search_runs([exp.experiment_id])) == 3  # no new MLflow runs
    # Through the flow anyway (--force-flow): every stage skips its finished work.
    proc = cli("run", "--force-flow", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Pipeline finished." in proc.stdout
    assert (proj / "models/mlp/train/step_0000020.pt").stat().st_mtime_ns == before

    _check_champion(client, proj)
    _check_compare(proj, uri)
    _check_rerun(client, proj, uri, children)

    # A changed setting is seen: the fast path does not hide work to do.
    proc = cli("run", "--set", "evaluate.n_samples=150", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0 and "Pipeline finished." in proc.stdout, proc.stderr[-3000:]
    assert json.loads((proj / "metrics/mlp.json").read_text())["n_samples"] == 150


def _check_champion(client, proj):
    """The best generator is registered, `champion` points at it, and it loads and generates
    exactly what the selected checkpoint does."""
    import mlflow.pyfunc
    import numpy as np
    import torch

    from gan_models.checkpoint import load_checkpoint
    from gan_models.training import generate
    from gan_models.variants import generator_from_checkpoint

    champ = client.get_model_version_by_alias("gan-generator", "champion")
    assert str(champ.version) == "1"  # the second, identical run did not beat it
    assert len(client.search_model_versions("name='gan-generator'")) == 2
    fids = {v: json.loads((proj / "metrics" / f"{v}.json").read_text()) for v in ("mlp", "dcgan")}
    sel = {v: json.loads((proj / "models" / v / "selected" / "selection.json").read_text()) for v in fids}
    best = min(sel, key=lambda v: sel[v]["best_scores"]["fid"])
    assert champ.tags["variant"] == best
    mlflow.set_tracking_uri(client.tracking_uri)
    mlflow.set_registry_uri(client.tracking_uri)
    try:
        model = mlflow.pyfunc.load_model("models:/gan-generator@champion")
    finally:
        mlflow.set_tracking_uri(None)
        mlflow.set_registry_uri(None)
        os.environ.pop("MLFLOW_REGISTRY_URI", None)  # set_registry_uri exported it; None does not unset it
    z = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)
    out = model.predict(z)
    G, _ = generator_from_checkpoint(load_checkpoint(proj / "models" / best / "selected" / "best.pt"))
    expected = generate(G, torch.from_numpy(z)).numpy()
    assert out.shape == (5, 1, 8, 8)
    np.testing.assert_array_equal(out, expected)


def _check_compare(proj, uri):
    proc = cli("compare", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stderr[-3000:]
    fids = {v: json.loads((proj / "metrics" / f"{v}.json").read_text())["fid"] for v in ("mlp", "dcgan")}
    order = sorted(fids, key=fids.get)
    lines = [line.split() for line in proc.stdout.splitlines() if line[:1].isdigit()]
    assert [row[1] for row in lines] == order  # best first
    assert f"{fids[order[0]]:.4g}" in proc.stdout
    md = (proj / "reports" / "compare.md").read_text()
    assert "| 1 | " + order[0] in md and "| 2 | " + order[1] in md
    assert (proj / "reports" / "compare.png").stat().st_size > 1000


def _check_rerun(client, proj, uri, children):
    child = next(r for r in children if r.data.tags["variant"] == "dcgan")
    proc = cli("rerun", child.info.run_id, "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "identical" in proc.stdout and "DIFFERS" not in proc.stdout
    assert "dcgan checkpoint_sha256" in proc.stdout and "dcgan fid" in proc.stdout
    reruns = client.search_runs([child.info.experiment_id], filter_string="tags.rerun_of != ''")
    assert len(reruns) == 1 and reruns[0].data.tags["rerun_of"] == child.data.tags["mlflow.parentRunId"]
    assert (proj / "reruns" / child.info.run_id / "metrics" / "dcgan.json").read_text() == \
        (proj / "metrics" / "dcgan.json").read_text()
    # Other code than the recorded commit: refused, naming the commit, nothing run.
    f = proj / "tasks" / "reporting" / "compare.py"
    original = f.read_text()
    f.write_text(original + "\n# changed\n")
    proc = cli("rerun", child.info.run_id, cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    f.write_text(original)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert child.data.tags["code_version"] in proc.stderr and "--allow-code-change" in proc.stderr


def test_dvc_repro_on_a_fresh_clone_reproduces_the_flow(tmp_path):
    """`dvc repro` (stage commands, no Prefect) and `flows run` produce identical outputs."""
    params = {**TINY, "train": {**TINY["train"], "variants": {"mlp": TINY["train"]["variants"]["mlp"]}},
              "tracking": {"enabled": False}}
    a = copy_project(tmp_path / "a", params)
    b = copy_project(tmp_path / "b", params)
    proc = cli("run", cwd=a)
    assert proc.returncode == 0, proc.stderr[-3000:]
    repro = _dvc(b, "repro")
    assert repro.returncode == 0, repro.stdout[-2000:] + repro.stderr[-3000:]
    assert "Running stage 'train@mlp'" in repro.stdout
    lock_a = (a / "dvc.lock").read_text()
    lock_b = (b / "dvc.lock").read_text()
    assert lock_a == lock_b  # same hashes of every output and metric
    again = _dvc(b, "repro")
    assert "Running stage" not in again.stdout


def test_every_preset_trains_through_the_pipeline_with_comparable_mlflow_runs(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    from gan_models.variants import VARIANTS

    small = {"mlp": {"hidden": [16]}, "dcgan": {"width": 8}, "resnet": {"width": 8}, "progan": {"width": 8},
             "stylegan": {"width": 4, "max_width": 8}}
    variants = {}
    # translation presets need translation data: tests/test_translation.py runs them through the flow
    names = [n for n in VARIANTS.names() if VARIANTS.get(n).translation is None]
    for name in names:
        spec = VARIANTS.get(name)
        variants[name] = {"z_dim": 8, "generator": small[spec.generator.name],
                          "discriminator": small[spec.discriminator.name]}
    params = {**TINY, "train": {**TINY["train"], "steps": 6, "checkpoint_every": 3, "log_every": 3,
                                "variants": variants}}
    proj = copy_project(tmp_path / "proj", params)
    uri = f"sqlite:///{isolated_stores / 'all.db'}"
    proc = cli("run", "--quiet", cwd=proj, env={"MLFLOW_TRACKING_URI": uri})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    children = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert sorted(r.data.tags["variant"] for r in children) == sorted(names)
    common = {"fid", "is_mean", "classes_covered", "confident_fraction", "loss/D", "loss/G", "D/real", "D/fake",
              "grad_norm/D", "grad_norm/G", "select/fid", "selected_step"}
    for r in children:
        assert r.info.status == "FINISHED", r.data.tags["variant"]
        missing = common - set(r.data.metrics)
        assert not missing, (r.data.tags["variant"], missing)
    for name in ("cgan", "acgan"):
        assert (proj / "samples" / name / "classes.png").exists()
    # StyleGAN: beside the others with the same names, plus its truncation trade-off and grids
    style = next(r for r in children if r.data.tags["variant"] == "stylegan")
    assert {"psi0.5_fid", "psi0.7_fid", "psi0.5_precision", "psi0.5_recall"} <= set(style.data.metrics)
    for f in ("style_mixing.png", "truncation.png", "traversal_w.png"):
        assert (proj / "samples" / "stylegan" / f).exists()
    # Several conditioning inputs: label agreement and each measured input's correlation, and a grid per input
    multi = next(r for r in children if r.data.tags["variant"] == "multimodal")
    assert {"label_agreement", "attr_r_thickness", "attr_mae_thickness", "attr_r_slant"} <= set(multi.data.metrics)
    for f in ("input_label.png", "input_thickness.png", "input_slant.png"):
        assert (proj / "samples" / "multimodal" / f).exists()
    record = json.loads((proj / "samples" / "multimodal" / "export.json").read_text())
    assert len(record["inputs"]["grids"]["thickness"]["measured_mean"]) == 8


def test_concurrent_variants_do_not_share_randomness(tmp_path):
    """Variants that draw from torch's global RNG while training (dropout in the ResNet G, the
    gradient penalty's interpolation) give the same checkpoints whether they run two at a time or
    one after the other."""
    small = {"z_dim": 8, "generator": {"width": 8}, "discriminator": {"width": 8}}
    variants = {"resnet": small, "wgan_gp": {**small, "loss": {"n_critic": 2}}}
    base = {**TINY, "train": {**TINY["train"], "steps": 10, "checkpoint_every": 5, "threads": 1,
                              "variants": variants}, "tracking": {"enabled": False}}
    together = copy_project(tmp_path / "together", {**base, "train": {**base["train"], "parallel": 2}})
    alone = copy_project(tmp_path / "alone", {**base, "train": {**base["train"], "parallel": 1}})
    for proj in (together, alone):
        proc = cli("run", "--quiet", cwd=proj)
        assert proc.returncode == 0, proc.stderr[-3000:]
    for v in variants:
        index = lambda p: json.loads((p / "models" / v / "train" / "index.json").read_text())["checkpoints"]  # noqa: E731
        assert [e["sha256"] for e in index(together)] == [e["sha256"] for e in index(alone)], v
