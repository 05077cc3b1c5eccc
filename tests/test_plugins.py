"""Plugins: a user's components registered from the user's own module or installed package, used
by the pipeline like built-ins, fingerprinted like our code, and refused with exit 2 when broken.

The slow test installs the example package (examples/gan_plugin_example) with pip and runs it
end to end through `flows run` and `dvc repro`, and checks what MLflow, DVC's plots and the
stage records say about it."""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, TINY, cli, copy_project, venv_path, write_params

from gan_models import plugins as P
from gan_models.registry import Registry, check_builder
from gan_models.variants import DISCRIMINATORS, GENERATORS, LOSSES, VARIANTS

EXAMPLE = ROOT / "examples" / "gan_plugin_example"


# -- registration is validated the same way for built-ins and plugins ----------------------------------
def test_a_builder_must_take_its_kinds_arguments_and_default_its_options():
    def ok(z_dim, data_shape, out_activation, n_classes, width: int = 8):
        return None

    def missing(z_dim, data_shape, width: int = 8):
        return None

    def no_default(z_dim, data_shape, out_activation, n_classes, width):
        return None

    reg = Registry("generator architecture", ("z_dim", "data_shape", "out_activation", "n_classes"))
    reg.register("ok", ok, "fine")
    with pytest.raises(ValueError, match=r"'missing': must accept .*missing: out_activation, n_classes"):
        reg.register("missing", missing, "lacks two arguments")
    with pytest.raises(ValueError, match=r"'no_default': parameter\(s\) width need a default"):
        reg.register("no_default", no_default, "an option without a default")
    with pytest.raises(ValueError, match=r"'ok' is already registered \(by gan_pipeline\)"):
        reg.register("ok", ok, "again")
    with pytest.raises(ValueError, match="needs a one-line description"):
        reg.register("blank", ok, "  ")
    check_builder("a loader", lambda **_: None, ("root", "seed"))  # **kwargs takes every argument


def test_every_built_in_passes_the_check_its_registry_applies():
    for reg in P.registries().values():
        for e in reg:
            if reg.fixed is not None:
                check_builder(f"{reg.kind} {e.name}", e.value, reg.fixed)
            assert e.source == "gan_pipeline"


def _plugin_module(tmp_path: Path, name: str, body: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(body))
    sys.path.insert(0, str(tmp_path))
    return name


def test_a_plugin_module_registers_under_its_own_name(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = _plugin_module(tmp_path, "plug_ok_gen", """
        from gan_models.variants import GENERATORS, register_variant
        from gan_models import variants as V

        def gen(z_dim, data_shape, out_activation, n_classes, hidden: list = (16,)):
            return V._mlp_generator(z_dim, data_shape, out_activation, n_classes, hidden=hidden)

        GENERATORS.register("plug_ok_gen", gen, "an MLP under another name")
        register_variant("plug_ok_variant", "uses it", {
            "generator": {"arch": "plug_ok_gen"}, "discriminator": {"arch": "mlp"}, "loss": {"name": "bce"},
            "z_dim": 4, "optimizer": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.5, 0.999]})
    """)
    try:
        [plugin] = [p for p in P.load_plugins([name], entry_points=False) if p.name == name]
        assert set(plugin.provides) == {("generator", "plug_ok_gen"), ("variant", "plug_ok_variant")}
        assert GENERATORS.entry("plug_ok_gen").source == name and VARIANTS.entry("plug_ok_variant").source == name
        assert plugin.files == (f"{name}.py",) and plugin.distribution is None
        before = plugin.code_hashes()
        assert list(before) == [f"plugin:{name}/{name}.py"]
        (tmp_path / f"{name}.py").write_text((tmp_path / f"{name}.py").read_text() + "\n# edited\n")
        assert plugin.code_hashes() != before  # content, not the module's import-time state
        assert P.load_plugins([name], entry_points=False)[-1] is plugin  # imported once per process
    finally:
        _forget(name, ["plug_ok_gen"], ["plug_ok_variant"])


def _forget(name: str, generators=(), variants=(), losses=()):
    P._LOADED.pop(name, None)
    sys.modules.pop(name, None)
    for reg, names in ((GENERATORS, generators), (VARIANTS, variants), (LOSSES, losses)):
        for n in names:
            reg._entries.pop(n, None)


@pytest.mark.parametrize("body,expected", [
    ("import no_such_dependency_xyz\n", r"plugin 'plug_bad'.*ModuleNotFoundError.*no_such_dependency_xyz"),
    ("from gan_models.variants import LOSSES\nfrom gan_models.losses import BCELoss\n"
     "LOSSES.register('bce', BCELoss, 'a second bce')\n", r"plugin 'plug_bad'.*'bce' is already registered"),
    ("from gan_models.variants import DISCRIMINATORS\n"
     "DISCRIMINATORS.register('plug_bad_d', lambda data_shape: None, 'forgets two arguments')\n",
     r"plugin 'plug_bad'.*must accept the argument\(s\) data_shape, n_classes, aux_classes"),
    ("x = 1\n", r"plugin 'plug_bad'.*registered no component"),
])
def test_a_broken_plugin_is_named(tmp_path, monkeypatch, body, expected):
    monkeypatch.setattr(sys, "path", list(sys.path))
    name = _plugin_module(tmp_path, "plug_bad", body)
    try:
        with pytest.raises(P.PluginError, match=expected):
            P.load_plugins([name], entry_points=False)
    finally:
        _forget(name)
        DISCRIMINATORS._entries.pop("plug_bad_d", None)


def test_a_missing_or_broken_plugin_exits_2_naming_it(tmp_path):
    doc = {**copy.deepcopy(TINY), "plugins": ["not_installed_plugin_xyz"]}
    write_params(tmp_path / "params.yaml", doc)
    proc = cli("check", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    assert "plugin 'not_installed_plugin_xyz': no module named 'not_installed_plugin_xyz'" in proc.stderr
    assert "Traceback" not in proc.stderr
    (tmp_path / "half_plugin.py").write_text("from gan_models.variants import GENERATORS\n"
                                             "GENERATORS.register('mlp', object, 'clashes with a built-in')\n")
    write_params(tmp_path / "params.yaml", {**doc, "plugins": ["half_plugin"]})
    proc = cli("check", cwd=tmp_path)
    assert proc.returncode == 2 and "plugin 'half_plugin'" in proc.stderr and "already registered" in proc.stderr
    # a plugin's name that params.yaml refers to before the plugin loads: a clear unknown-name error
    write_params(tmp_path / "params.yaml", {**copy.deepcopy(TINY), "evaluate": {"metrics": ["my_metric"]}})
    proc = cli("check", cwd=tmp_path)
    assert proc.returncode == 2 and "unknown metric 'my_metric'" in proc.stderr


# -- the example plugin's own parts ---------------------------------------------------------------------
@pytest.fixture
def example_plugin(monkeypatch):
    monkeypatch.setattr(sys, "path", [str(EXAMPLE), *sys.path])
    P.load_plugins(["gan_plugin_example"], entry_points=False)
    return sys.modules["gan_plugin_example"]


def test_example_loss_is_the_least_squares_closed_form(example_plugin):
    loss = LOSSES.get("ls_targets")(a=-1.0, b=1.0, c=0.0)
    real, fake = torch.tensor([0.5, 2.0, -1.0]), torch.tensor([0.0, -3.0])
    d = 0.5 * (np.mean((np.array([0.5, 2.0, -1.0]) - 1) ** 2) + np.mean((np.array([0.0, -3.0]) + 1) ** 2))
    g = 0.5 * np.mean(np.array([0.0, -3.0]) ** 2)
    assert loss.d_objective(real, fake).item() == pytest.approx(d, rel=1e-6)
    assert loss.g_objective(fake).item() == pytest.approx(g, rel=1e-6)
    with pytest.raises(ValueError, match="must differ"):
        LOSSES.get("ls_targets")(a=1.0, b=1.0)


def test_example_generator_modulates_per_class_and_starts_unmodulated(example_plugin):
    from gan_models.variants import DataInfo, build, resolve

    torch.manual_seed(0)
    gan = build(resolve("film_cgan", {"generator": {"hidden": [16, 16]}, "z_dim": 4}),
                DataInfo("image", (1, 8, 8), 10))
    z = torch.randn(5, 4)
    a, b = gan.G(z, torch.zeros(5, dtype=torch.long)), gan.G(z, torch.full((5,), 3))
    assert a.shape == (5, 1, 8, 8)
    assert torch.equal(a, b)  # FiLM layers start at zero: the label has no effect yet
    with torch.no_grad():
        for f in gan.G.films:
            f.weight.normal_()  # now the embedding moves gamma and beta
    assert not torch.allclose(gan.G(z, torch.zeros(5, dtype=torch.long)), gan.G(z, torch.full((5,), 3)))


# -- fingerprints: a plugin's source is code of the stages that use it -----------------------------
def test_registered_metrics_see_the_full_arrays_and_cannot_take_a_score_name():
    """KID gets every row; the k-NN metrics their seeded 5,000-row subsets; a metric returning a
    score another one gives (FID here) is refused rather than replacing it."""
    from gan_models import metrics as M

    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(5200, 4)), rng.normal(0.3, 1.0, size=(5100, 4))
    got = M.registered_metrics(["kid", "precision_recall"], real, fake, seed=7)
    assert (got["kid_mean"], got["kid_std"]) == M.kid(real, fake, seed=7)
    sub = np.random.default_rng(7)
    r, f = real[sub.choice(5200, 5000, replace=False)], fake[sub.choice(5100, 5000, replace=False)]
    assert (got["precision"], got["recall"]) == M.precision_recall(r, f, k=3)
    M.METRICS.register("fid_again", lambda real, fake, seed: {"fid": 0.0}, "returns a name FID has")
    with pytest.raises(ValueError, match=r"metric 'fid_again' returns score\(s\) \['fid'\]"):
        M.registered_metrics(["fid_again"], real[:50], fake[:50], seed=0)


def test_plugin_source_is_in_the_fingerprint_of_the_stages_that_use_it(tmp_path, example_plugin, monkeypatch):
    from tasks.config import load_params
    from tasks.stages import dvc_yaml, plugin_hashes, stage

    metric_file = tmp_path / "gap_metric.py"
    metric_file.write_text("from gan_models.metrics import METRICS\n"
                           "METRICS.register('gap', lambda real, fake, seed: {'gap': 0.0}, 'zero')\n")
    doc = copy.deepcopy(TINY)
    doc["plugins"] = ["gap_metric"]
    doc["evaluate"] = {**doc["evaluate"], "metrics": ["kid", "gap"]}
    doc["train"]["variants"]["film"] = {"preset": "film_cgan", "z_dim": 4}
    try:
        params = load_params(write_params(tmp_path / "params.yaml", doc))
        film = "plugin:gan_plugin_example/film.py"
        gap = "plugin:gap_metric/gap_metric.py"
        for name in ("train", "select", "evaluate", "export"):
            assert film in plugin_hashes(stage(name), params, "film"), name
            assert film not in plugin_hashes(stage(name), params, "mlp"), name
        assert gap in plugin_hashes(stage("evaluate"), params, "mlp")
        assert gap not in plugin_hashes(stage("train"), params, "mlp")
        assert plugin_hashes(stage("prepare"), params, None) == {}
        before = plugin_hashes(stage("train"), params, "film")[film]
        monkeypatch.chdir(tmp_path)
        text = dvc_yaml(params)
        train_block = text[text.index("  train:"):text.index("  select:")]
        assert str(EXAMPLE / "gan_plugin_example" / "film.py") in train_block
        assert "gap_metric.py" in text[text.index("  evaluate:"):text.index("  export:")]
        assert "gap_metric.py" not in train_block
        assert "models/film/train/curves.csv" in text[text.index("plots:"):]
        from gan_models.files import sha256_file

        assert before == sha256_file(EXAMPLE / "gan_plugin_example" / "film.py")  # the file's content
    finally:
        _forget("gap_metric")
        from gan_models.metrics import METRICS
        METRICS._entries.pop("gap", None)


# -- end to end: installed with pip, run through Prefect + MLflow and DVC ------------------------------
GAP_PLUGIN = '''\
"""A metric plugin next to params.yaml: the distance between mean features."""
import numpy as np
from gan_models.metrics import METRICS


def mean_gap(real, fake, seed, ord: int = 2):
    return {"mean_gap": float(np.linalg.norm(real.mean(0) - fake.mean(0), ord=ord))}


METRICS.register("mean_gap", mean_gap, "norm of the difference of the mean features")
'''


def _git(proj: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=proj, check=True,
                          capture_output=True, text=True).stdout.strip()


def _dvc(proj: Path, env: dict, *args: str) -> subprocess.CompletedProcess:
    import os

    full = {**os.environ, **env, "PATH": venv_path(),
            "PYTHONPATH": os.pathsep.join([str(proj), str(ROOT), env["PYTHONPATH"]])}
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=proj, capture_output=True, text=True,
                          env=full, timeout=900)


@pytest.mark.slow
def test_example_plugin_installed_with_pip_runs_end_to_end(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    src, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(EXAMPLE, src)  # pip writes build files next to the sources
    pip = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                          "--no-index", "--target", str(site), str(src)], capture_output=True, text=True)
    assert pip.returncode == 0, pip.stderr[-3000:]

    doc = copy.deepcopy(TINY)
    doc["train"]["variants"] = {"film_cgan": {"generator": {"hidden": [32]}, "discriminator": {"hidden": [32]},
                                              "z_dim": 8},
                                "mlp": TINY["train"]["variants"]["mlp"]}
    doc["train"]["parallel"] = 2  # worker processes: each must load both plugins itself
    doc["plugins"] = ["gap_plugin"]
    doc["evaluate"] = {**doc["evaluate"], "metrics": ["kid", "mean_gap"]}
    doc["tracking"] = {**doc["tracking"], "system_metrics_interval": 0.5}
    proj = copy_project(tmp_path / "proj", doc)
    (proj / "gap_plugin.py").write_text(GAP_PLUGIN)
    uri = f"sqlite:///{isolated_stores / 'plugins.db'}"
    env = {"PYTHONPATH": str(site), "MLFLOW_TRACKING_URI": uri}

    proc = cli("variants", cwd=proj, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "film_cgan" in proc.stdout and "[plugin gan_plugin_example]" in proc.stdout
    assert "mean_gap" in proc.stdout and "[plugin gap_plugin]" in proc.stdout
    assert "gan-plugin-example==0.1.0" in proc.stdout

    assert cli("dvc-yaml", cwd=proj, env=env).returncode == 0
    film_py = site / "gan_plugin_example" / "film.py"
    assert str(film_py) in (proj / "dvc.yaml").read_text()
    _git(proj, "add", "-A")
    _git(proj, "commit", "-qm", "with plugins")

    proc = cli("run", "--quiet", cwd=proj, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]

    # The plugin variant trained, was scored by the plugin metric, and its records name the code.
    m = json.loads((proj / "metrics" / "film_cgan.json").read_text())
    assert m["mean_gap"] > 0 and m["kid_mean"] == m["kid_mean"] and "precision" not in m
    film_code = json.loads((proj / "models" / "film_cgan" / "train" / "run.json").read_text())["code"]
    mlp_code = json.loads((proj / "models" / "mlp" / "train" / "run.json").read_text())["code"]
    assert "plugin:gan_plugin_example/film.py" in film_code
    assert not any(k.startswith("plugin:") for k in mlp_code)

    # MLflow: model-training experiment, source commit, plugin versions, the data set as input,
    # system metrics, step-indexed sample images, the generator as a logged model with a signature.
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("tests")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    runs = {r.data.tags.get("variant"): r for r in client.search_runs([exp.experiment_id])}
    parent, film, mlp = runs[None], runs["film_cgan"], runs["mlp"]
    head = _git(proj, "rev-parse", "HEAD")
    manifest = json.loads((proj / "data" / "prepared" / "manifest.json").read_text())
    for run in (parent, film, mlp):
        assert run.data.tags["mlflow.source.git.commit"] == head
        plugins = {p["name"]: p for p in json.loads(run.data.tags["plugins"])}
        assert plugins["gan_plugin_example"]["package"] == "gan-plugin-example"
        assert plugins["gan_plugin_example"]["version"] == "0.1.0"
        assert plugins["gap_plugin"]["origin"] == "params.yaml"
    for run in (film, mlp):
        [ds] = run.inputs.dataset_inputs
        assert ds.dataset.digest == manifest["content_hash"][:36] and ds.dataset.name == "digits"
        assert json.loads(ds.dataset.profile)["num_train"] == manifest["counts"]["train"]
        arrays = np.load(proj / "data" / "prepared" / "train.npz")
        spec = json.loads(ds.dataset.schema)["mlflow_tensorspec"]
        for part, key in (("features", "x"), ("targets", "y")):
            [tensor] = json.loads(spec[part])
            assert tensor["tensor-spec"]["dtype"] == str(arrays[key].dtype), (part, tensor)
        assert json.loads(spec["features"])[0]["tensor-spec"]["shape"] == [-1, *arrays["x"].shape[1:]]
        assert any(k.startswith("system/cpu_utilization") for k in run.data.metrics), sorted(run.data.metrics)
        # MLflow names logged images <key>+step+<step>+timestamp+...png
        images = [re.match(r"images/(\w+)\+step\+(\d+)\+.*\.png$", a.path)
                  for a in client.list_artifacts(run.info.run_id, "images")]
        keys = sorted((m[1], int(m[2])) for m in images if m)
        best = json.loads((proj / "models" / run.data.tags["variant"] / "selected" / "selection.json").read_text())
        assert keys == sorted([("samples", 10), ("samples", 20), ("selected_checkpoint", best["best_step"])]), keys
    models = client.search_logged_models(experiment_ids=[exp.experiment_id])
    assert len(models) == 1 and models[0].source_run_id in (film.info.run_id, mlp.info.run_id)
    import mlflow.pyfunc

    mlflow.set_tracking_uri(uri)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
    finally:
        mlflow.set_tracking_uri(None)
    sig = model.metadata.signature
    assert list(sig.inputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 8]
    assert list(sig.outputs.to_dict()[0]["tensor-spec"]["shape"]) == [-1, 1, 8, 8]
    assert model.predict(np.zeros((3, 8), np.float32)).shape == (3, 1, 8, 8)

    # compared like a built-in: `flows compare` ranks both variants with their FID from MLflow
    proc = cli("compare", cwd=proj, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from gan_models.metrics import SCORES

    fid_format = SCORES.get("fid").fmt
    rows = {t[1]: t for t in (line.split() for line in proc.stdout.splitlines()) if t[1:2] in (["film_cgan"], ["mlp"])}
    assert sorted(rows) == ["film_cgan", "mlp"], proc.stdout
    for v, run in (("film_cgan", film), ("mlp", mlp)):
        assert format(run.data.metrics["fid"], fid_format) in rows[v], (rows[v], run.data.metrics["fid"])

    # DVC: plots show what the stages wrote; nothing to do after the flow recorded dvc.lock.
    plots = _dvc(proj, env, "plots", "show", "--json")
    assert plots.returncode == 0, plots.stderr[-3000:]
    shown = json.loads(plots.stdout)
    history = [json.loads(line) for line in
               (proj / "models" / "film_cgan" / "train" / "history.jsonl").read_text().splitlines()]
    series = _plot_rows(shown, "film_cgan training curves")
    for field, key in (("loss_D", "loss/D"), ("D_fake", "D/fake"), ("grad_norm_G", "grad_norm/G")):
        got = sorted((int(r["step"]), float(r[field])) for r in series if r["field"] == field)
        assert got == [(h["step"], pytest.approx(h[key], rel=1e-12)) for h in history], field
    fid_rows = _plot_rows(shown, "held-out selection score of every variant over training")
    expected = set()
    for v in ("film_cgan", "mlp"):
        sel = json.loads((proj / "models" / v / "selected" / "selection.json").read_text())
        expected |= {(f"{v}/selected/scores.csv", c["step"], round(c["scores"]["fid"], 9)) for c in sel["candidates"]}
    got = {(r["filename"], int(r["step"]), round(float(r["score"]), 9)) for r in fid_rows}
    assert got == expected and len(fid_rows) == 4  # two checkpoints of each variant, side by side

    proc = _dvc(proj, env, "repro")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Running stage" not in proc.stdout, proc.stdout[-3000:]

    # Editing the installed plugin's code retrains its variant (only that one) under DVC.
    before_film = (proj / "models" / "film_cgan" / "train" / "run.json").read_bytes()
    before_mlp = (proj / "models" / "mlp" / "train" / "run.json").read_bytes()
    film_py.write_text(film_py.read_text() + "\n# edited: the code of this plugin changed\n")
    proc = _dvc(proj, env, "repro")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Running stage 'train@film_cgan'" in proc.stdout, proc.stdout[-3000:]
    assert (proj / "models" / "film_cgan" / "train" / "run.json").read_bytes() != before_film
    assert (proj / "models" / "mlp" / "train" / "run.json").read_bytes() == before_mlp

    # A rerun of the first run is refused: the plugin's code is not what it was.
    proc = cli("rerun", parent.info.run_id, cwd=proj, env=env)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "plugin 'gan_plugin_example''s code differs" in proc.stderr


def _plot_rows(shown: dict, plot_id: str) -> list[dict]:
    """The data rows of one plot from `dvc plots show --json` (DVC 3: {id: [{type, revisions,
    content: {data: {values: [...]}}}]} or with anchor definitions; both have the rows)."""
    entries = shown["data"][plot_id] if "data" in shown else shown[plot_id]
    rows: list[dict] = []
    for e in entries:
        content = e.get("content", {})
        values = content.get("data", {}).get("values")
        if values is None:
            values = e.get("data", {}).get("values", [])
        rows += values
    return rows
