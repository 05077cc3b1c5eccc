"""Shared fixtures: one tiny configuration that every test builds on, and isolated stores.

Every test runs with PREFECT_HOME and MLFLOW_TRACKING_URI pointing into its own temporary
folder, so nothing touches the user's ~/.prefect or ./mlflow.db.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent

# Small enough to train two variants end to end in seconds on the CPU: 8x8 digits.
TINY = {
    "seed": 0,
    "device": "cpu",
    "prepare": {"dataset": "digits", "classifier_samples": 3234},
    "train": {"steps": 20, "batch_size": 16, "checkpoint_every": 10, "log_every": 5, "parallel": 2,
              "threads": None, "amp": "off",
              "variants": {"mlp": {"generator": {"hidden": [32]}, "discriminator": {"hidden": [32]}, "z_dim": 8},
                           "dcgan": {"generator": {"width": 8}, "discriminator": {"width": 8}, "z_dim": 8}}},
    "select": {"n_samples": 100},
    "evaluate": {"n_samples": 200},
    "export": {"grid_size": 16, "n_images": 2, "n_array": 50, "interpolation_steps": 4},
    "tracking": {"experiment": "tests"},
}


@pytest.fixture(autouse=True)
def isolated_stores(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.mktemp("stores")
    monkeypatch.setenv("PREFECT_HOME", str(home / "prefect"))
    monkeypatch.setenv("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "WARNING")
    monkeypatch.setenv("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")  # 20 s is tight on 2 cores
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.setenv("GIT_PYTHON_REFRESH", "quiet")
    yield home
    # mlflow.set_registry_uri() also exports MLFLOW_REGISTRY_URI, and set_registry_uri(None) does not
    # take it back: left over, it would point the next test's registry at this test's store.
    os.environ.pop("MLFLOW_REGISTRY_URI", None)
    if "mlflow" in sys.modules:
        sys.modules["mlflow"].set_registry_uri(None)


@pytest.fixture(autouse=True)
def registries_restored():
    """A test that loads a plugin leaves the registries, the loaded-plugin table and sys.modules as
    it found them, so the next test sees only the built-ins (and can load the plugin afresh)."""
    from gan_models import plugins, registry

    regs = plugins.registries().values()
    saved = [(r, dict(r._entries)) for r in regs]
    loaded = dict(registry.LOADED_PLUGINS)
    yield
    for name, plugin in list(registry.LOADED_PLUGINS.items()):
        if name not in loaded:
            module = plugin.target.partition(":")[0]
            for m in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
                del sys.modules[m]
    registry.LOADED_PLUGINS.clear()
    registry.LOADED_PLUGINS.update(loaded)
    for r, entries in saved:
        r._entries.clear()
        r._entries.update(entries)


def write_params(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """An empty project folder holding the tiny params.yaml; the working directory is set to it."""
    write_params(tmp_path / "params.yaml", TINY)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def tiny_params(project):
    from tasks.config import load_params

    return load_params(project / "params.yaml")


def run_stages(project: Path, doc: dict, variant: str):
    """Write ``doc`` as the project's params.yaml and run prepare, train, select and evaluate for
    ``variant`` in-process; returns (params, its metrics, the selected generator, its z_dim)."""
    from gan_models.checkpoint import load_checkpoint
    from gan_models.variants import generator_from_checkpoint
    from tasks.layout import Layout
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    write_params(project / "params.yaml", doc)
    params = load_params(project / "params.yaml")
    prepare(params)
    train(params, variant, progress=False)
    select(params, variant)
    metrics = evaluate(params, variant)
    G, z_dim = generator_from_checkpoint(load_checkpoint(Layout().best_checkpoint(variant)))
    return params, metrics, G, z_dim


def copy_project(dest: Path, params: dict) -> Path:
    """A git + DVC repository with this project's code, dvc.yaml and the given params."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("flows", "tasks", "gan_models"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "dvc.yaml", dest / "dvc.yaml")
    shutil.copy(ROOT / ".gitignore", dest / ".gitignore")
    write_params(dest / "params.yaml", params)
    run = lambda *a: subprocess.run(a, cwd=dest, check=True, capture_output=True, text=True)  # noqa: E731
    run("git", "init", "-q")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "add", "-A")
    run("git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "init")
    run(sys.executable, "-m", "dvc", "init", "-q")
    run(sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    return dest


def venv_path() -> str:
    """PATH with this interpreter's bin folder first, so dvc.yaml's `python -m flows` finds it."""
    return str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", "")


def cli(*args: str, cwd: Path, timeout: int = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``python -m flows ARGS`` in ``cwd`` and return the completed process."""
    full_env = {**os.environ, **(env or {})}
    extra = (env or {}).get("PYTHONPATH")  # e.g. where a test installed a plugin package
    full_env["PYTHONPATH"] = os.pathsep.join([str(cwd), str(ROOT), *([extra] if extra else [])])
    full_env["PATH"] = venv_path()
    return subprocess.run([sys.executable, "-m", "flows", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full_env)
