"""Thin Prefect tasks around the stage functions, with MLflow logging of what each stage wrote.

The stage functions (``tasks.<stage>``) are the same ones ``dvc.yaml`` runs through
``python -m flows <stage>``; these wrappers add only retries and tracking.  Prefect's default
INPUTS cache policy would hash tensors differently in every process, so caching is left to the
stages themselves: each returns at once when its record carries its current fingerprint
(``tasks.stages``: settings, inputs and code) and its outputs verify.

A task may run in a worker process with its own copy of the tracker: every task returns
``tracking_complete`` with its result, so a logging failure there reaches the flow.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from gan_models.files import sha256_file
from gan_models.training import DivergenceError
from tasks import evaluate as _evaluate
from tasks import export as _export
from tasks import prepare as _prepare
from tasks import select as _select
from tasks import study as _study
from tasks import train as _train
from tasks.config import Params, ensure_plugins
from tasks.layout import Layout
from tasks.reporting.tracking import Tracker
from tasks.runtime import resolve_device
from tasks.select import checkpoint_grids

log = logging.getLogger(__name__)


def _both(*callbacks):
    live = [c for c in callbacks if c is not None]
    if not live:
        return None

    def call(step: int, stats: dict[str, float]) -> None:
        for c in live:
            c(step, stats)

    return call


class ProgressArtifact:
    """A Prefect progress artifact of one training run, updated at most every ``every_s``."""

    def __init__(self, artifact_id, steps: int, every_s: float = 5.0):
        self.id, self.steps, self.every_s, self.last = artifact_id, max(1, steps), every_s, 0.0

    def __call__(self, step: int, stats: dict[str, float]) -> None:
        if self.id is not None and time.monotonic() - self.last >= self.every_s:
            self._send(100.0 * min(step, self.steps) / self.steps)

    def done(self) -> None:
        if self.id is not None:
            self._send(100.0)

    def _send(self, value: float) -> None:
        from prefect.artifacts import update_progress_artifact

        self.last = time.monotonic()
        try:
            update_progress_artifact(self.id, value)
        except Exception:  # artifacts are a view: training never fails for them
            self.id = None


def progress_artifact(variant: str, steps: int) -> ProgressArtifact | None:
    """``train-<variant>`` in the flow run's Artifacts tab: the share of steps done; None outside
    a Prefect task run."""
    from prefect.context import TaskRunContext

    if TaskRunContext.get() is None:
        return None
    try:
        from prefect.artifacts import create_progress_artifact

        artifact_id = create_progress_artifact(0.0, key=artifact_key(f"train-{variant}"),
                                               description=f"training {variant}: % of its {steps} steps done")
    except Exception:
        return None
    return ProgressArtifact(artifact_id, steps)


def artifact_key(text: str) -> str:
    """Prefect artifact keys: lower-case letters, digits and dashes."""
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-")


def _tracked(summary: dict[str, Any], tracker: Tracker | None) -> dict[str, Any]:
    return {**summary, "tracking_complete": tracker is None or not tracker.offline}


@task(name="prepare", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE,
      task_run_name="prepare-{params.prepare.dataset}")
def prepare_task(params: Params, tracker: Tracker | None, layout: Layout = Layout()) -> dict[str, Any]:
    ensure_plugins(params)  # this task may run in a worker process
    summary = _prepare.prepare(params, layout)
    if tracker is not None:
        tracker.log_data(summary)
        tracker.log_artifact(None, layout.prepared / "manifest.json", "data")
    return _tracked(summary, tracker)


def _transient(task, task_run, state) -> bool:
    """Retry a training run unless it diverged or its settings are wrong: those would fail again."""
    try:
        state.result()
    except (DivergenceError, ValueError):
        return False
    except Exception:
        return True
    return True


@task(name="train", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE, retry_condition_fn=_transient,
      task_run_name="train-{variant}")
def train_task(params: Params, variant: str, tracker: Tracker | None, position: int = 0, progress: bool = True,
               layout: Layout = Layout()) -> dict[str, Any]:
    ensure_plugins(params)  # this task may run in a worker process
    on_log = tracker.metric_logger(variant) if tracker is not None else None
    monitor = (tracker.system_metrics(variant, params.tracking.system_metrics_interval)
               if tracker is not None and params.tracking.system_metrics else None)
    report = progress_artifact(variant, params.variant_steps(params.cell(variant).variant))
    try:
        summary = _train.train(params, variant, layout, on_log=_both(on_log, report), position=position,
                               progress=progress)
    finally:
        if on_log is not None:
            on_log.flush()  # what was logged before a failure is kept too
        if monitor is not None:
            monitor.finish()
        if report is not None:
            report.done()
    if tracker is not None:
        d = layout.train_dir(variant)
        # Statistics this run did not log live (training was up to date, or resumed): from the file.
        live_from = summary["steps"] - summary["steps_trained"]
        rows = [json.loads(line) for line in (d / "history.jsonl").read_text().splitlines()]
        tracker.log_history(variant, [r for r in rows if r["step"] <= live_from])
        if summary["steps_trained"]:
            tracker.log_metrics(variant, {"train/seconds": summary["seconds"],
                                          "train/steps_per_second": summary["steps_per_second"]})
        tracker.set_tag(variant, "train_index_sha256", sha256_file(d / "index.json"))
        tracker.log_artifact(variant, d / "dynamics.png", "training")
        tracker.log_artifact(variant, d / "history.jsonl", "training")
        tracker.log_artifact(variant, d / "curves.csv", "training")
    return _tracked(summary, tracker)


@task(name="select", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE,
      task_run_name="select-{variant}")
def select_task(params: Params, variant: str, tracker: Tracker | None, layout: Layout = Layout()) -> dict[str, Any]:
    ensure_plugins(params)  # this task may run in a worker process
    summary = _select.select(params, variant, layout)
    if tracker is not None:
        for step, scores in summary["scores_by_step"].items():
            tracker.log_metrics(variant, scores, step=int(step), prefix="select/")
        tracker.log_metrics(variant, {"selected_step": summary["best_step"]})
        tracker.set_tag(variant, "checkpoint_sha256", summary["best_sha256"])
        d = layout.selected_dir(variant)
        for name in ("selection.json", "selection.png", "best.pt", "scores.csv"):
            tracker.log_artifact(variant, d / name, "selection")
        if not tracker.offline:
            try:
                grids = checkpoint_grids(layout, variant, seed=params.export.seed,
                                         device=resolve_device(params.device))
            except Exception as e:  # a view of the checkpoints: it never fails the selection made
                log.warning("select %s: sample grids of the checkpoints not logged: %s: %s", variant,
                            type(e).__name__, e)
                grids = []
            tracker.log_checkpoint_images(variant, grids, summary["best_step"])
    return _tracked(summary, tracker)


@task(name="evaluate", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE,
      task_run_name="evaluate-{variant}")
def evaluate_task(params: Params, variant: str, tracker: Tracker | None, layout: Layout = Layout()) -> dict[str, Any]:
    ensure_plugins(params)  # this task may run in a worker process
    metrics = _evaluate.evaluate(params, variant, layout)
    if tracker is not None:
        tracker.log_metrics(variant, {k: v for k, v in metrics.items() if k not in ("step",)}, step=metrics["step"])
        tracker.set_tag(variant, "extractor", metrics["extractor"])
        if metrics.get("task"):  # compare ranks translation variants apart from generation ones
            tracker.set_tag(variant, "task", metrics["task"])
        tracker.log_artifact(variant, layout.metrics_file(variant), "metrics")
    return _tracked(metrics, tracker)


@task(name="export", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE,
      task_run_name="export-{variant}")
def export_task(params: Params, variant: str, tracker: Tracker | None, layout: Layout = Layout()) -> dict[str, Any]:
    ensure_plugins(params)  # this task may run in a worker process
    summary = _export.export(params, variant, layout)
    if tracker is not None:
        tracker.log_artifact(variant, layout.samples_dir(variant), "samples")
    return _tracked(summary, tracker)


@task(name="study", retries=1, retry_delay_seconds=2, cache_policy=NO_CACHE, task_run_name="study")
def study_task(params: Params, tracker: Tracker | None, layout: Layout = Layout()) -> dict[str, Any]:
    """A study's comparison over seeds; the aggregates go to each variant's MLflow run (the parent
    of its seed runs), the report and plots to the pipeline run."""
    ensure_plugins(params)
    record = _study.study(params, layout)
    if tracker is not None:
        tracker.log_study(record, layout.root / "reports" / "study")
    return _tracked(record, tracker)
