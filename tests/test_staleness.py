"""Results are never stale: what a stage returns is what the current code and settings produce.

The stage table (tasks/stages.py) is the one definition of what a stage depends on: its
settings, its input files and its source files.  These tests edit code, settings and the tracking
store the way a user does and check that exactly the affected stages rerun, through `dvc repro`
and through `flows run` alike.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY, cli, copy_project, venv_path, write_params

ONE = {**TINY, "train": {**TINY["train"], "parallel": 1, "variants": {"mlp": TINY["train"]["variants"]["mlp"]}},
       "tracking": {"enabled": False}}


def _dvc(cwd, *args):
    env = {**os.environ, "PATH": venv_path(), "PYTHONPATH": str(cwd) + os.pathsep + str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=900, env=env)
    assert proc.returncode == 0, f"dvc {' '.join(args)}: " + proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _edit(root: Path, rel: str, old: str, new: str) -> None:
    f = root / rel
    text = f.read_text()
    assert text.count(old) == 1, f"{old!r} not found once in {rel}: update this test"
    f.write_text(text.replace(old, new))


# -- the table and dvc.yaml ---------------------------------------------------------------------
def test_committed_dvc_yaml_is_the_stage_tables_output():
    from tasks.config import load_params
    from tasks.stages import dvc_yaml

    text = dvc_yaml(load_params(ROOT / "params.yaml"))
    assert (ROOT / "dvc.yaml").read_text() == text, "dvc.yaml is out of date: run python -m flows dvc-yaml"


def test_dvc_yaml_check_command_reports_a_stale_file(tmp_path):
    stale = tmp_path / "dvc.yaml"
    stale.write_text((ROOT / "dvc.yaml").read_text().replace("      - gan_models/losses/adversarial.py\n", "", 1))
    proc = cli("dvc-yaml", "--check", "--out", str(stale), "--params", str(ROOT / "params.yaml"), cwd=tmp_path)
    assert proc.returncode == 1 and "differs from the stage table" in proc.stderr
    proc = cli("dvc-yaml", "--out", str(stale), "--params", str(ROOT / "params.yaml"), cwd=tmp_path)
    assert proc.returncode == 0 and stale.read_text() == (ROOT / "dvc.yaml").read_text()


def test_each_stages_code_is_the_import_closure_of_its_module():
    """Against Python itself: every project module that importing a stage's module loads is in
    that stage's code, except what only the settings parser imports for validation."""
    from tasks.stages import STAGES, code_files

    def loaded(module: str) -> set[str]:
        out = subprocess.run([sys.executable, "-c", f"import sys, {module}; print('\\n'.join(sorted(sys.modules)))"],
                             cwd=ROOT, capture_output=True, text=True, check=True, env={**os.environ,
                                                                                         "PYTHONPATH": str(ROOT)})
        files = set()
        for name in out.stdout.split():
            if name.split(".")[0] in ("gan_models", "tasks", "flows"):
                base = Path(*name.split("."))
                f = base.with_suffix(".py") if (ROOT / base.with_suffix(".py")).exists() else base / "__init__.py"
                files.add(str(f))
        return files

    only_for_validation = loaded("tasks.config") - set(code_files("tasks.config"))
    for st in STAGES:
        code = set(code_files(st.module))
        missing = loaded(st.module) - code - only_for_validation
        assert not missing, (st.name, missing)
    prepare, train, export = (set(code_files(f"tasks.{n}")) for n in ("prepare", "train", "export"))
    assert {"gan_models/losses/adversarial.py", "gan_models/networks/dcgan.py", "tasks/train.py"} <= train - prepare
    assert "tasks/export.py" in export and "tasks/export.py" not in train
    assert {"gan_models/features/classifier.py", "gan_models/features/base.py", "tasks/config.py"} <= prepare


# -- derived outputs follow what they are derived from -------------------------------------------
def test_changing_the_feature_extractor_reruns_select_and_evaluate_not_train(project):
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    params = load_params(project / "params.yaml", ["train.variants={mlp: {generator: {hidden: [32]}, "
                                                   "discriminator: {hidden: [32]}, z_dim: 8}}"])
    data_hash = prepare(params)["content_hash"]
    train(params, "mlp", progress=False)
    select(params, "mlp")
    before = evaluate(params, "mlp")
    run_json = project / "models/mlp/train/run.json"
    trained = run_json.stat().st_mtime_ns

    for change, extractor in ((["prepare.classifier_samples=5000"], "classifier"), (["prepare.extractor=pixels"], "pixels8x8")):
        changed = load_params(project / "params.yaml", ["train.variants={mlp: {generator: {hidden: [32]}, "
                                                        "discriminator: {hidden: [32]}, z_dim: 8}}", *change])
        assert prepare(changed)["content_hash"] == data_hash  # the same arrays: only the extractor changed
        train(changed, "mlp", progress=False)
        assert run_json.stat().st_mtime_ns == trained  # same data, same code: training is not redone
        sel = select(changed, "mlp")
        after = evaluate(changed, "mlp")
        assert after["extractor"] == sel["extractor"] == extractor
        assert after["fid"] != pytest.approx(before["fid"], rel=1e-9), change
        before = after


# -- the smaller holes ------------------------------------------------------------------------------
@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_a_cuda_device_on_a_cpu_machine_is_refused_before_any_work(project):
    for command in (["check"], ["run"], ["prepare"]):
        proc = cli(*command, "--set", "device=cuda", cwd=project)
        assert proc.returncode == 2, (command, proc.stderr[-2000:])
        assert "device: 'cuda' but this machine has no usable CUDA device" in proc.stderr
        assert "Traceback" not in proc.stderr
    assert not (project / "data").exists()


def test_every_preset_with_a_packed_discriminator_is_refused_up_front_or_trains(project):
    """tricks.pack with each preset: either the settings are rejected before any work, or a
    training step runs (no shape error at the first step, as acgan + pack gave)."""
    import torch

    from gan_models import variants as V
    from gan_models.training import Trainer
    from tasks.config import ConfigError, load_params

    small = {"mlp": {"hidden": [16]}, "dcgan": {"width": 8}, "resnet": {"width": 8}, "progan": {"width": 8},
             "stylegan": {"width": 4, "max_width": 8}}
    refused, trained = [], []
    for name in V.VARIANTS.names():
        preset = V.VARIANTS.get(name)
        if preset.translation:  # tricks do not apply to translation losses at all
            continue
        spec = {"z_dim": 8, "generator": small[preset.generator.name],
                "discriminator": small[preset.discriminator.name], "tricks": {"pack": 2}}
        write_params(project / "params.yaml", {**TINY, "train": {**TINY["train"], "variants": {name: spec}}})
        try:
            params = load_params(project / "params.yaml")
        except ConfigError as e:
            assert "tricks.pack" in str(e), (name, str(e))
            refused.append(name)
            continue
        gan = V.build(params.variant_spec(name), V.DataInfo("image", (1, 8, 8), 10))
        g = torch.Generator().manual_seed(0)
        data = torch.randint(0, 256, (64, 1, 8, 8), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, 10, (64,), generator=g)
        trainer = Trainer(gan, data, batch_size=8, seed=0, conditions=labels)
        trainer.run(1, log_every=1, progress=False)
        trained.append(name)
    assert {"acgan", "cgan"} <= set(refused)
    assert {"mlp", "dcgan", "pacgan", "wgan_gp"} <= set(trained)


def test_a_variant_written_as_null_takes_overrides(project):
    from tasks.config import load_params

    doc = {**TINY, "train": {**TINY["train"], "variants": {"mlp": None}}}
    write_params(project / "params.yaml", doc)
    assert "mlp: null" in (project / "params.yaml").read_text()
    params = load_params(project / "params.yaml", ["train.variants.mlp.lr_g=0.001"])
    assert params.variant_spec("mlp").lr_g == 0.001
    proc = cli("check", "--set", "train.variants.mlp.lr_g=0.001", cwd=project)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)["variants"]["mlp"]["lr_g"] == 0.001


def test_missing_stage_outputs_exit_2_naming_the_command_to_run_first(project):
    proc = cli("train", "--variant", "mlp", cwd=project)
    assert proc.returncode == 2 and "python -m flows prepare" in proc.stderr, proc.stderr[-2000:]
    assert cli("prepare", "--quiet", cwd=project).returncode == 0
    for command, first in (("select", "train"), ("evaluate", "select"), ("export", "select")):
        proc = cli(command, "--variant", "mlp", cwd=project)
        assert proc.returncode == 2, (command, proc.stderr[-2000:])
        assert f"python -m flows {first} --variant mlp first" in proc.stderr, proc.stderr
        assert "Traceback" not in proc.stderr


# -- end to end: edit code, rerun ---------------------------------------------------------------------
LOSS_EDIT = ("gan_models/losses/adversarial.py", "            return F.softplus(-fake_out).mean()  # -log sigmoid(l_fake)",
             "            return 1.5 * F.softplus(-fake_out).mean()  # -log sigmoid(l_fake), scaled")
EXPORT_EDIT = ("tasks/export.py", "WALK_ROWS = 8\n", "WALK_ROWS = 6\n")


def _ran(out: str) -> set[str]:
    return {line.split("'")[1] for line in out.splitlines() if line.startswith("Running stage '")}


@pytest.mark.slow
def test_code_edits_rerun_exactly_the_affected_stages_through_dvc_and_the_flow(tmp_path):
    by_dvc, by_flow = copy_project(tmp_path / "dvc", ONE), copy_project(tmp_path / "flow", ONE)
    assert _ran(_dvc(by_dvc, "repro")) == {"prepare", "train@mlp", "select@mlp", "evaluate@mlp", "export@mlp"}
    assert cli("run", "--quiet", cwd=by_flow).returncode == 0
    assert (by_dvc / "dvc.lock").read_text() == (by_flow / "dvc.lock").read_text()
    ckpt = "models/mlp/train/step_0000020.pt"
    old = {"ckpt": _sha(by_dvc / ckpt), "metrics": (by_dvc / "metrics/mlp.json").read_text(),
           "prepared": _sha(by_dvc / "data/prepared/manifest.json"),
           "walk": _sha(by_dvc / "samples/mlp/interpolation.png")}

    # A numeric constant in the loss: training and everything after it reruns, prepare does not.
    for proj in (by_dvc, by_flow):
        _edit(proj, *LOSS_EDIT)
    assert _ran(_dvc(by_dvc, "repro")) == {"train@mlp", "select@mlp", "evaluate@mlp", "export@mlp"}
    assert _sha(by_dvc / ckpt) != old["ckpt"]
    assert (by_dvc / "metrics/mlp.json").read_text() != old["metrics"]
    assert _sha(by_dvc / "data/prepared/manifest.json") == old["prepared"]
    proc = cli("run", "--quiet", cwd=by_flow)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (by_flow / "dvc.lock").read_text() == (by_dvc / "dvc.lock").read_text()
    assert _sha(by_flow / ckpt) == _sha(by_dvc / ckpt)

    # Only the export code: only export reruns, and its output follows the new code.
    for proj in (by_dvc, by_flow):
        _edit(proj, *EXPORT_EDIT)
    trained = _sha(by_dvc / ckpt), (by_flow / ckpt).stat().st_mtime_ns
    walk = _sha(by_dvc / "samples/mlp/interpolation.png")
    assert _ran(_dvc(by_dvc, "repro")) == {"export@mlp"}
    assert _sha(by_dvc / "samples/mlp/interpolation.png") != walk
    proc = cli("run", "--quiet", cwd=by_flow)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (by_flow / ckpt).stat().st_mtime_ns == trained[1]  # the flow did not retrain either
    assert (by_flow / "dvc.lock").read_text() == (by_dvc / "dvc.lock").read_text()
    assert _ran(_dvc(by_flow, "repro")) == set() and _ran(_dvc(by_dvc, "repro")) == set()


@pytest.mark.slow
def test_a_fresh_clone_has_no_changed_dependency_or_parameter(tmp_path):
    """The committed dvc.lock is what the committed code and params.yaml produce: a clone without
    outputs lists only the outputs it lacks (and the deps that are those outputs)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                           text=True, check=True).stdout.split()
    clone = tmp_path / "clone"
    for rel in files:
        if (ROOT / rel).is_file():
            (clone / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, clone / rel)
    for args in (["init", "-q"], ["add", "-A"], ["-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "c"]):
        subprocess.run(["git", *args], cwd=clone, check=True, capture_output=True)
    status = json.loads(_dvc(clone, "status", "--json"))
    from tasks.config import load_params

    names = load_params(ROOT / "params.yaml").variant_names  # the committed default's variants
    outs = {"data/prepared"} | {f"{d}/{v}" for d in ("models", "samples") for v in names} | \
        {f"models/{v}/{s}" for v in names for s in ("train", "selected")} | \
        {f"metrics/{v}.json" for v in names}
    problems = []
    for stage_name, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):
                problems.append((stage_name, change))
                continue
            for kind, entries in change.items():
                if kind == "changed outs" and set(entries.values()) <= {"deleted", "not in cache"}:
                    continue
                if kind == "changed deps" and all(e in outs and s == "deleted" for e, s in entries.items()):
                    continue
                problems.append((stage_name, kind, entries))
    assert not problems, problems
    assert status, "dvc status reported nothing: the clone unexpectedly holds the outputs"


# -- "is this run done?" asks the tracking store itself ------------------------------------------------
@pytest.mark.slow
def test_a_deleted_tracking_store_is_logged_again_not_reported_done(tmp_path, isolated_stores):
    from mlflow.tracking import MlflowClient

    proj = copy_project(tmp_path / "proj", {**ONE, "tracking": {"experiment": "tests"}})
    db = isolated_stores / "deleted.db"
    env = {"MLFLOW_TRACKING_URI": f"sqlite:///{db}"}
    assert cli("run", "--quiet", cwd=proj, env=env).returncode == 0
    again = cli("run", "--quiet", cwd=proj, env=env)
    assert again.returncode == 0 and "nothing to do" in again.stdout, again.stderr[-2000:]
    db.unlink()
    after = cli("run", "--quiet", cwd=proj, env=env)
    assert after.returncode == 0, after.stderr[-3000:]
    assert "nothing to do" not in after.stdout and "Pipeline finished." in after.stdout
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("tests").experiment_id])
    parent = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parent) == 1 and parent[0].data.tags["pipeline_state"]
    fid = json.loads((proj / "metrics/mlp.json").read_text())["fid"]
    child = [r for r in runs if r.data.tags.get("variant") == "mlp"][0]
    assert child.data.metrics["fid"] == pytest.approx(fid, rel=1e-12)


from tasks.reporting.tracking import Tracker  # noqa: E402  (the subclass below must be importable by worker processes)


class _Down:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("the tracking store went away (seen in a worker process)")
        return fail


class WorkerFailingTracker(Tracker):
    """A tracker whose store fails in worker processes only, never in the flow's own process."""

    main_pid: int = 0

    @property
    def client(self):
        return super().client if os.getpid() == self.main_pid else _Down()


@pytest.mark.slow
def test_a_tracking_failure_in_a_worker_process_reaches_the_flow(project, isolated_stores):
    from prefect import flow

    from flows.pipeline import _run
    from tasks.config import load_params

    params = load_params(project / "params.yaml", ["train.parallel=2"])
    real = Tracker.start(params, "params.yaml", [])
    tracker = WorkerFailingTracker(real.uri, real.experiment_id, real.parent_run_id, dict(real.child_run_ids))
    tracker.main_pid = os.getpid()

    @flow(name="worker-tracking")
    def run():
        return _run(params, tracker, 2, False)

    result = run()
    assert not result["failed"]
    assert all("fid" in result["variants"][v]["evaluate"] for v in params.variant_names)
    assert tracker.offline  # the workers' failures reached this process: the run is not "fully logged"


def test_a_longer_run_continues_byte_identical_except_progressive_growing(tmp_path, monkeypatch):
    """Raising the step count continues training where the schedule allows it, and the continued
    checkpoints are the bytes an uninterrupted run writes; progressive growing's schedule depends
    on the step count, so its checkpoints are not continued under another one."""
    from tasks.config import load_params
    from tasks.prepare import prepare
    from tasks.train import train

    variants = {"mlp": TINY["train"]["variants"]["mlp"],
                "progan": {"z_dim": 8, "generator": {"width": 8}, "discriminator": {"width": 8}}}
    doc = {**TINY, "train": {**TINY["train"], "parallel": 1, "steps": 4, "checkpoint_every": 2, "log_every": 2,
                             "variants": variants}}
    folders = {}
    for name, steps in (("continued", [4, 6]), ("straight", [6])):
        folder = tmp_path / name
        folder.mkdir()
        write_params(folder / "params.yaml", doc)
        monkeypatch.chdir(folder)
        for n in steps:
            params = load_params(folder / "params.yaml", [f"train.steps={n}"])
            prepare(params)
            done = {v: train(params, v, progress=False)["steps_trained"] for v in variants}
        folders[name] = (folder, done)
    assert folders["continued"][1] == {"mlp": 2, "progan": 6}  # mlp went on from step 4; progan restarted
    for v in variants:
        files = sorted(p.name for p in (folders["straight"][0] / "models" / v / "train").glob("step_*.pt"))
        assert files == ["step_0000002.pt", "step_0000004.pt", "step_0000006.pt"]
        for f in files + ["index.json", "history.jsonl", "run.json"]:
            a, b = (folders[k][0] / "models" / v / "train" / f for k in ("continued", "straight"))
            assert _sha(a) == _sha(b), (v, f)
