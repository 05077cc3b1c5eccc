"""The MLflow model registry: the best generator of each pipeline run, logged as a model and
registered; the alias ``champion`` moves to it when it beats the champion on the same basis."""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path
from typing import Any

from gan_models.files import sha256_file

from .tracking import Tracker

CHAMPION = "champion"


@contextlib.contextmanager
def _quiet(*loggers: str):
    """MLflow's INFO lines of a model logging ("validating the input example") off for a while."""
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in loggers]
    for lg, _ in saved:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in saved:
            lg.setLevel(level)


def log_generator_model(tracker: "Tracker", run_id: str, checkpoint: Path, ckpt: dict[str, Any]) -> tuple[str, str]:
    """Log the generator in ``checkpoint`` as a logged model of ``run_id`` (the run page's
    "Logged models"): a pyfunc model from code (tasks/reporting/mlflow_generator.py) with a signature
    (noise (n, z_dim) float32 -> samples, optional ``labels`` param) and an input example, and
    the source of every plugin it may need.  Returns (model URI, model id)."""
    from importlib.metadata import version

    import mlflow
    import numpy as np
    from mlflow.models import Model, ModelSignature
    from mlflow.types import ParamSchema, ParamSpec, Schema, TensorSpec

    from gan_models.registry import plugins_using

    from ..stages import names_in

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    here = Path(__file__).resolve().parent
    z_dim = int(ckpt["spec"]["z_dim"])
    shape = tuple(int(d) for d in ckpt["data"]["shape"])
    signature = ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, z_dim))]),
        outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, *shape))]),
        params=ParamSchema([ParamSpec("labels", "long", [0], shape=(-1,))]))
    # The plugins this generator's variant uses: their code ships with the model, and loading it
    # imports them (tasks/reporting/mlflow_generator.py).
    plugins = plugins_using(names_in(ckpt["spec"]) | {ckpt["variant"]})
    code = [str(here.parent.parent / "gan_models")] + sorted({p.root if len(p.files) > 1 or p.files[0] == "__init__.py"
                                                        else str(Path(p.root) / p.files[0]) for p in plugins if p.files})
    # In the variant run's experiment (Model.log alone would use the process's active experiment).
    model = tracker.client.create_logged_model(tracker.experiment_id, name="generator", source_run_id=run_id,
                                               tags={"variant": ckpt["variant"], "step": str(ckpt["step"])})
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracker.uri)  # Model.log resolves the store from the global setting
    try:
        with _quiet("mlflow.pyfunc", "mlflow.models"):
            info = Model.log(
                artifact_path=None, name="generator", flavor=mlflow.pyfunc, run_id=run_id, model_id=model.model_id,
                python_model=str(here / "mlflow_generator.py"), artifacts={"checkpoint": str(checkpoint)},
                code_paths=code, signature=signature, input_example=np.zeros((2, z_dim), np.float32),
                model_config={"plugins": [p.target for p in plugins]},
                metadata={"z_dim": z_dim, "variant": ckpt["variant"], "step": int(ckpt["step"])},
                pip_requirements=[f"torch=={version('torch')}", f"mlflow=={version('mlflow')}", "numpy", "scipy",
                                  "pillow", "matplotlib"])
    finally:
        mlflow.set_tracking_uri(previous)
    return info.model_uri, info.model_id


def promote_if_better(client, name: str, version: str, basis: dict[str, str], rank: list[float]) -> str:
    """Move the alias ``champion`` of registered model ``name`` to ``version`` when there is no
    champion yet, or when ``rank`` (smaller is better) beats the champion's on the same basis
    (selection metric, feature extractor, data).  Returns what happened, in words."""
    try:
        current = client.get_model_version_by_alias(name, CHAMPION)
    except Exception:
        current = None
    if current is not None and str(current.version) != str(version):
        if json.loads(current.tags.get("selection_basis", "{}")) != basis:
            return (f"{name} v{version} registered; champion stays v{current.version}: it was selected on other "
                    "data or another metric, so the two do not compare (use another tracking.registered_model)")
        best = json.loads(current.tags.get("selection_rank", "null"))
        if best is not None and list(rank) >= list(best):
            return f"{name} v{version} registered; champion stays v{current.version} ({best} beats {list(rank)})"
    client.set_registered_model_alias(name, CHAMPION, str(version))
    return f"{name} v{version} registered and is the champion"


def register_best(tracker: Tracker, name: str, selections: dict[str, dict[str, Any]], kind: str,
                  data_hash: str) -> str | None:
    """Register the best generator of this pipeline run (lowest selection rank over the variants
    that finished selection) and promote it when it beats the champion."""
    import torch  # noqa: F401  (the checkpoint loader below needs it)

    from gan_models.checkpoint import load_checkpoint

    from ..scoring import sort_key

    if not selections:
        return None
    ranked = {v: list(sort_key(s["metric"], kind, s["best_scores"])) for v, s in selections.items()}
    best = min(ranked, key=lambda v: ranked[v])
    sel = selections[best]
    ckpt_path = Path(sel["best_checkpoint"])
    ckpt = load_checkpoint(ckpt_path)

    def go() -> str:
        client = tracker.client
        run_id = tracker.child_run_ids[best]
        source, model_id = log_generator_model(tracker, run_id, ckpt_path, ckpt)
        try:
            client.create_registered_model(name)
        except Exception:
            pass  # it exists already
        basis = {"metric": sel["metric"], "extractor": sel.get("extractor", ""), "data_hash": data_hash}
        mv = client.create_model_version(name, source, run_id=run_id, model_id=model_id, tags={
            "variant": ckpt.get("variant", best), **({"cell": best} if best != ckpt.get("variant", best) else {}),
            "selection_basis": json.dumps(basis), "selection_rank": json.dumps(ranked[best]),
            "checkpoint_sha256": sha256_file(ckpt_path), "selected_step": str(sel["best_step"])})
        return promote_if_better(client, name, mv.version, basis, ranked[best])

    return tracker._guard("registering the best generator", go)


