"""The commands the README promises that no other test runs: listing the registries, comparing
pipeline runs (`--run`, `--all-runs`), rerunning a pipeline (parent) run, and an unlabelled
folder data set through the stage commands."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from conftest import TINY, cli, copy_project, write_params


def _section(stdout: str, title: str) -> list[str]:
    """The names listed under the heading line that starts with ``title`` (up to a blank line)."""
    lines = stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    names = []
    for line in lines[start + 1:]:
        if not line.strip():
            break
        names.append(line.split()[0])
    return names


def test_variants_lists_every_registered_preset_and_component(tmp_path):
    from gan_models import variants as V

    proc = cli("variants", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for title, reg in (("Variants", V.VARIANTS), ("Generator architectures", V.GENERATORS),
                       ("Discriminator architectures", V.DISCRIMINATORS), ("Losses", V.LOSSES)):
        listed = _section(proc.stdout, title)
        assert sorted(listed) == sorted(e.name for e in reg), title
        assert len(listed) == len(set(listed)), title
    # every preset the README's table names is registered (and so listed)
    for name in ("mlp", "dcgan", "wgan_gp", "acgan", "progan", "pacgan", "unrolled"):
        assert name in _section(proc.stdout, "Variants")


def test_datasets_lists_every_registered_data_set(tmp_path):
    from gan_models.data import DATASETS

    proc = cli("datasets", cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    listed = _section(proc.stdout, "Data sets")
    assert sorted(listed) == sorted(e.name for e in DATASETS)
    for line in proc.stdout.splitlines()[1:]:  # each with its description
        name = line.split()[0]
        assert DATASETS.entry(name).description in line


# ----------------------------------------------------------------------------------------------
# Two pipeline runs in one project and one MLflow store, shared by the compare and rerun tests.

# On 2 cores one variant at a time is quicker; no model registration (not what these tests check).
PARAMS = {**TINY, "prepare": {**TINY["prepare"], "classifier_samples": 1000}, "train": {**TINY["train"], "parallel": 1},
          "select": {"n_samples": 50}, "evaluate": {"n_samples": 100},
          "export": {"grid_size": 4, "n_images": 1, "n_array": 10, "interpolation_steps": 2},
          "tracking": {**TINY["tracking"], "registered_model": None}}


def _row_cells(stdout: str) -> list[list[str]]:
    """The body rows of compare's text table (cells are separated by two or more spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines() if re.match(r"\d+\s{2,}", line)]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    base = tmp_path_factory.mktemp("cli")
    proj = copy_project(base / "proj", PARAMS)
    env = {"PREFECT_HOME": str(base / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_LOGGING_LEVEL": "WARNING", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
           "MLFLOW_TRACKING_URI": f"sqlite:///{base / 'mlflow.db'}", "GIT_PYTHON_REFRESH": "quiet"}
    runs = []
    for extra in ([], ["--set", "evaluate.seed=7"]):
        proc = cli("run", "--quiet", *extra, cwd=proj, env=env)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        parent = re.search(r"parent run ([0-9a-f]{32})", proc.stdout).group(1)
        # What the run wrote on disk (the next run in this folder rewrites metrics/).
        metrics = {v: json.loads((proj / "metrics" / f"{v}.json").read_text()) for v in ("mlp", "dcgan")}
        runs.append({"parent": parent, "metrics": metrics,
                     "name": MlflowClient(env["MLFLOW_TRACKING_URI"]).get_run(parent).data.tags["mlflow.runName"]})
    assert runs[0]["parent"] != runs[1]["parent"]
    # Another evaluation seed, other samples: every variant's final FID differs between the runs.
    for v in ("mlp", "dcgan"):
        assert f"{runs[0]['metrics'][v]['fid']:.4g}" != f"{runs[1]['metrics'][v]['fid']:.4g}"
    return {"proj": proj, "env": env, "runs": runs}


@pytest.mark.slow
def test_compare_run_picks_that_pipeline_run(two_runs):
    proj, env, (first, second) = two_runs["proj"], two_runs["env"], two_runs["runs"]
    proc = cli("compare", "--run", first["parent"], cwd=proj, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert first["parent"] in proc.stdout.splitlines()[0]  # not the newest run, the default
    header = re.split(r"\s{2,}", next(line for line in proc.stdout.splitlines() if line.startswith("#")).strip())
    rows = _row_cells(proc.stdout)
    fid_col = header.index("FID")
    fids = {v: m["fid"] for v, m in first["metrics"].items()}
    order = sorted(fids, key=fids.get)
    assert [r[1] for r in rows] == order  # that run's two variants, best first
    assert [r[fid_col] for r in rows] == [f"{fids[v]:.4g}" for v in order]
    for v in order:
        assert f"{second['metrics'][v]['fid']:.4g}" not in proc.stdout
    # A run id that is not a pipeline run of the experiment: exit 2, naming it.
    proc = cli("compare", "--run", "0" * 32, cwd=proj, env=env, timeout=300)
    assert proc.returncode == 2 and "0" * 32 in proc.stderr, proc.stderr[-2000:]


@pytest.mark.slow
def test_compare_all_runs_ranks_every_variant_run_of_the_experiment(two_runs):
    proj, env, runs = two_runs["proj"], two_runs["env"], two_runs["runs"]
    proc = cli("compare", "--all-runs", cwd=proj, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    header = re.split(r"\s{2,}", next(line for line in proc.stdout.splitlines() if line.startswith("#")).strip())
    assert "pipeline run" in header
    rows = _row_cells(proc.stdout)
    pcol, fcol = header.index("pipeline run"), header.index("FID")
    by_run = {run["name"]: {r[1]: r[fcol] for r in rows if r[pcol] == run["name"]} for run in runs}
    for run in runs:
        assert by_run[run["name"]] == {v: f"{m['fid']:.4g}" for v, m in run["metrics"].items()}
    # Ranked over all of them together: FID ascending, every row numbered in order.
    expected = sorted(m["fid"] for run in runs for m in run["metrics"].values())
    ranked = [float(r[fcol]) for r in rows if r[pcol] in by_run]
    np.testing.assert_allclose(ranked, expected, rtol=5e-4)
    assert [int(r[0]) for r in rows] == list(range(1, len(rows) + 1))
    md = (proj / "reports" / "compare.md").read_text()
    assert md.count(f"| {runs[0]['name']} |") == 2 and md.count(f"| {runs[1]['name']} |") == 2


@pytest.mark.slow
def test_rerun_of_a_pipeline_run_reruns_every_variant_and_reports_identical(two_runs):
    from mlflow.tracking import MlflowClient

    proj, env, first = two_runs["proj"], two_runs["env"], two_runs["runs"][0]
    proc = cli("rerun", first["parent"], "--quiet", cwd=proj, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DIFFERS" not in proc.stdout and "NOT identical" not in proc.stdout
    assert re.search(r"^identical: \d+ values", proc.stdout, re.M), proc.stdout
    for v in ("mlp", "dcgan"):
        for what in ("data_hash", "train_index_sha256", "checkpoint_sha256", "fid", "is_mean"):
            assert re.search(rf"^\s+{v} {re.escape(what)}\s+same\b", proc.stdout, re.M), (v, what, proc.stdout)
        # Redone from scratch in reruns/<id>/ with the first run's settings (evaluate.seed default)
        redone = json.loads((proj / "reruns" / first["parent"] / "metrics" / f"{v}.json").read_text())
        assert redone["fid"] == first["metrics"][v]["fid"] and redone["is_mean"] == first["metrics"][v]["is_mean"]
        assert redone["step"] == first["metrics"][v]["step"]
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    new_parent = re.search(r"new MLflow run ([0-9a-f]{32})", proc.stdout).group(1)
    assert client.get_run(new_parent).data.tags["rerun_of"] == first["parent"]
    children = client.search_runs([client.get_run(new_parent).info.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{new_parent}'")
    assert sorted(r.data.tags["variant"] for r in children) == ["dcgan", "mlp"]


# ----------------------------------------------------------------------------------------------


def test_unlabelled_folder_runs_through_the_stage_commands_with_the_pixels_extractor(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    (tmp_path / "imgs").mkdir()
    for i in range(40):  # directly under the root: no class sub-folders, so no labels
        Image.fromarray(rng.integers(0, 256, (10, 10, 3), dtype=np.uint8)).save(tmp_path / "imgs" / f"{i:02d}.png")
    write_params(tmp_path / "params.yaml", {
        **PARAMS, "prepare": {"dataset": "folder", "root": "imgs", "image_size": 8},
        "train": {**PARAMS["train"], "variants": {"mlp": PARAMS["train"]["variants"]["mlp"]}}})
    proc = cli("prepare", cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert re.search(r"WARNING .*folder has no labels.*pixels extractor", proc.stderr), proc.stderr[-3000:]
    m = json.loads((tmp_path / "data/prepared/manifest.json").read_text())
    assert m["labelled"] is False and m["classes"] == [] and m["class_frequencies"] == []
    assert m["extractor"]["key"] == "pixels" and m["extractor"]["name"] == "pixels8x8"
    assert m["shape"] == [3, 8, 8] and m["counts"] == {"train": 36, "heldout": 4}
    assert not (tmp_path / "data/prepared/classifier.pt").exists()
    for stage in ("train", "select", "evaluate"):
        proc = cli(stage, "--variant", "mlp", "--quiet", cwd=tmp_path, timeout=300)
        assert proc.returncode == 0, (stage, proc.stderr[-3000:])
    metrics = json.loads((tmp_path / "metrics/mlp.json").read_text())
    assert metrics["extractor"] == "pixels8x8" and metrics["n_samples"] == 100
    assert "is_mean" not in metrics and "classes_covered" not in metrics  # no classifier, no logits

    # The FID is that of the pixels themselves (8x8 images: the 8x8 area average is the identity),
    # recomputed here from the evaluate stage's samples with scipy's sqrtm.
    import scipy.linalg

    from gan_models import checkpoint as ck
    from gan_models.training import sample
    from gan_models.variants import generator_from_checkpoint

    sel = json.loads((tmp_path / "models/mlp/selected/selection.json").read_text())
    assert sel["extractor"] == "pixels8x8" and len(sel["candidates"]) == 2
    G, z_dim = generator_from_checkpoint(ck.load_checkpoint(tmp_path / "models/mlp/selected/best.pt",
                                                            sel["best_sha256"]))
    fake = sample(G, 100, z_dim, 4321).double().numpy().reshape(100, -1)  # evaluate.seed's default
    real = np.load(tmp_path / "data/prepared/train_x.npy").astype(np.float64).reshape(36, -1) / 127.5 - 1
    s_r, s_g = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_r @ s_g)
    fid = ((real.mean(0) - fake.mean(0)) ** 2).sum() + np.trace(s_r) + np.trace(s_g) - 2 * np.trace(covmean).real
    assert metrics["fid"] == pytest.approx(fid, rel=1e-6)
