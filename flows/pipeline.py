"""The pipeline as one Prefect flow: prepare, then for every variant train -> select -> evaluate/export.

Variants run concurrently (``train.parallel`` at a time); one variant failing does not stop the
others, and the flow fails at the end naming each failure.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import torch
from prefect import flow
from prefect.futures import wait
from prefect.task_runners import ThreadPoolTaskRunner

from tasks.config import Params, load_params
from tasks.tracking import Tracker
from tasks.wrappers import evaluate_task, export_task, prepare_task, select_task, train_task

log = logging.getLogger("flows")


class PipelineFailed(RuntimeError):
    pass


@flow(name="gan-pipeline", log_prints=True)
def pipeline(params_file: str = "params.yaml", overrides: list[str] | None = None) -> dict[str, Any]:
    """Run every stage for every variant in ``train.variants`` of ``params_file``."""
    overrides = list(overrides or [])
    params = load_params(params_file, overrides)
    n_parallel = max(1, min(params.train.parallel, len(params.variant_names)))
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // n_parallel))
    tracker = Tracker.start(params, params_file, overrides) if params.tracking.enabled else None
    try:
        result = _run(params, tracker, n_parallel)
    except BaseException as e:
        if tracker is not None:
            tracker.finish(None, ok=False, reason=f"{type(e).__name__}: {e}")
        raise
    if tracker is not None:
        tracker.finish(None, ok=not result["failed"])
    if not result["failed"]:
        result["dvc"] = record_in_dvc(params_file, overrides)
    result["tracking"] = {"uri": tracker.uri, "parent_run_id": tracker.parent_run_id,
                          "child_run_ids": tracker.child_run_ids} if tracker else None
    if result["failed"]:
        raise PipelineFailed("; ".join(f"{v}: {why}" for v, why in result["failed"].items()))
    return result


def _run(params: Params, tracker: Tracker | None, n_parallel: int) -> dict[str, Any]:
    prepared = prepare_task(params, tracker)
    futures: dict[str, dict[str, Any]] = {}
    with ThreadPoolTaskRunner(max_workers=n_parallel) as runner:
        for i, v in enumerate(params.variant_names):
            f_train = runner.submit(train_task, {"params": params, "variant": v, "tracker": tracker, "position": i})
            f_sel = runner.submit(select_task, {"params": params, "variant": v, "tracker": tracker},
                                  wait_for=[f_train])
            f_eval = runner.submit(evaluate_task, {"params": params, "variant": v, "tracker": tracker},
                                   wait_for=[f_sel])
            f_exp = runner.submit(export_task, {"params": params, "variant": v, "tracker": tracker},
                                  wait_for=[f_sel])
            futures[v] = {"train": f_train, "select": f_sel, "evaluate": f_eval, "export": f_exp}
        wait([f for fs in futures.values() for f in fs.values()])
    results, failed = {}, {}
    for v, fs in futures.items():
        out = {}
        for stage, fut in fs.items():
            state = fut.state
            if state.is_completed():
                out[stage] = fut.result()
            else:
                failed.setdefault(v, _reason(stage, state))
        results[v] = out
        if tracker is not None:
            tracker.finish(v, ok=v not in failed, reason=failed.get(v))
    return {"prepare": prepared, "variants": results, "failed": failed}


def _reason(stage: str, state) -> str:
    try:
        state.result()
    except Exception as e:  # the task's own exception, or "upstream failed"
        return f"{stage} failed: {type(e).__name__}: {e}"
    return f"{stage} ended {state.type.value}"


def record_in_dvc(params_file: str, overrides: list[str]) -> str:
    """Record the outputs in dvc.lock (``dvc commit -f``), so ``dvc repro`` / ``dvc status`` agree
    with this run.  Skipped when the run used settings other than params.yaml."""
    if overrides or Path(params_file).resolve() != Path("params.yaml").resolve():
        return "not recorded in dvc.lock: the run used --params/--set, which dvc.yaml does not read"
    if not Path(".dvc").is_dir() or shutil.which("dvc") is None:
        return "not recorded in dvc.lock: no DVC repository here"
    proc = subprocess.run(["dvc", "commit", "--force", "--quiet"], capture_output=True, text=True)
    if proc.returncode != 0:
        log.warning("dvc commit failed: %s", proc.stderr.strip()[-2000:])
        return f"dvc commit failed: {proc.stderr.strip()[-500:]}"
    return "recorded in dvc.lock"
