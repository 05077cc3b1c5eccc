"""The pipeline as one Prefect flow: prepare, then for every cell train -> select -> evaluate/export,
then (a study) the comparison over seeds.

A cell is a variant, or in a study (``seeds`` in the settings) a variant and one of the seeds.
Cells run concurrently (``train.parallel`` at a time); one failing does not stop the others, and
the flow fails at the end naming each failure.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

from prefect import flow
from prefect.futures import wait
from prefect.task_runners import ProcessPoolTaskRunner

from flows.errors import PipelineFailed
from flows.fastpath import logged_state
from flows.prefect_tasks import evaluate_task, export_task, prepare_task, select_task, study_task, train_task
from tasks.config import Params, load_params
from tasks.layout import Layout
from tasks.reporting.model_registry import register_best
from tasks.reporting.tracking import UI_BASE, Tracker, experiment_url

log = logging.getLogger("flows")


def _flow_run_name() -> str:
    """``params.yaml: mlp, dcgan`` in the Prefect UI: which settings, which variants."""
    from prefect.runtime import flow_run

    params_file = str(flow_run.parameters.get("params_file", "params.yaml"))
    try:
        import yaml

        names = list((yaml.safe_load(Path(params_file).read_text()) or {}).get("train", {}).get("variants") or {})
    except Exception:  # the flow itself reports a bad file
        names = []
    overrides = flow_run.parameters.get("overrides") or []
    return f"{params_file}: {', '.join(names) or '?'}" + (f" (--set {' '.join(overrides)})" if overrides else "")


@flow(name="gan-pipeline", log_prints=True, flow_run_name=_flow_run_name)
def pipeline(params_file: str = "params.yaml", overrides: list[str] | None = None,
             progress: bool = True, dask_address: str | None = None) -> dict[str, Any]:
    """Run every stage for every variant in ``train.variants`` of ``params_file``; with
    ``dask_address``, the variants' stages run on that Dask cluster (prefect-dask)."""
    overrides = list(overrides or [])
    params = load_params(params_file, overrides)
    n_parallel = max(1, min(params.train.parallel, len(params.cells)))
    tracker = Tracker.start(params, params_file, overrides) if params.tracking.enabled else None
    try:
        result = _run(params, tracker, n_parallel, progress, dask_address)
    except BaseException as e:
        if tracker is not None:
            tracker.abort(f"the pipeline run failed: {type(e).__name__}: {e}")
            tracker.finish(None, ok=False, reason=f"{type(e).__name__}: {e}")
        raise
    if tracker is not None and params.tracking.registered_model:
        # Generators from noise only: a translation model takes images (another signature), and its
        # selection metric (L1 to the ground truth) does not rank against FID.
        selections = {c: r["select"] for c, r in result["variants"].items()
                      if "select" in r and params.variant_spec(params.cell(c).variant).translation is None}
        result["registry"] = register_best(tracker, params.tracking.registered_model, selections,
                                           result["prepare"]["kind"], result["prepare"]["content_hash"])
    if not result["failed"]:
        result["dvc"] = record_in_dvc(params_file, overrides)
    if tracker is not None:
        if not result["failed"] and not tracker.offline:
            # The store's own record that this exact state is logged: the no-change fast path
            # (flows.fastpath) looks for it there, so a deleted store or run means "log it again".
            state = logged_state(params, Layout())
            if state is not None:
                tracker.mark_logged(state)
        tracker.finish(None, ok=not result["failed"])
    result["tracking"] = {"uri": tracker.uri, "experiment_id": tracker.experiment_id,
                          "parent_run_id": tracker.parent_run_id,
                          "child_run_ids": tracker.child_run_ids, "variant_run_ids": tracker.variant_run_ids,
                          "complete": not tracker.offline} if tracker else None
    publish_artifacts(result, params, params_file)
    if result["failed"]:
        raise PipelineFailed("; ".join(f"{v}: {why}" for v, why in result["failed"].items()), result)
    return result


def publish_artifacts(result: dict[str, Any], params: Params, params_file: str) -> None:
    """Prefect artifacts of this flow run: a table of the variants' final metrics (what
    ``flows compare`` shows) and a markdown summary saying where outputs and MLflow runs are."""
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    from gan_models.metrics import table_scores

    keys = [name for name, _ in table_scores()]
    rows = []
    for v, stages in result["variants"].items():
        m, sel = stages.get("evaluate", {}), stages.get("select", {})
        rows.append({"variant": v, "status": "FAILED" if v in result["failed"] else "ok",
                     "selected_step": sel.get("best_step"), "extractor": m.get("extractor"),
                     **{k: round(float(m[k]), 4) for k in keys if k in m}})
    t = result.get("tracking")
    lines = [f"# GAN pipeline: {params_file}", "",
             f"Data: **{result['prepare']['dataset']}** (content hash `{result['prepare']['content_hash'][:12]}`), "
             f"{result['prepare']['counts']['train']} training samples; "
             + (f"seed {params.seed}." if params.seeds is None else
                f"a study: seeds {', '.join(map(str, params.seeds))} (data split: seed {params.seed})."), "",
             "| variant | status | selected step | FID | samples | metrics |", "|---|---|---|---|---|---|"]
    for r in rows:
        fid = r.get("fid", r.get("fid_points"))
        lines.append(f"| {r['variant']} | {r['status']} | {r['selected_step']} | "
                     f"{'' if fid is None else f'{fid:.4g}'} | samples/{r['variant']}/ | metrics/{r['variant']}.json |")
    if t:
        lines += ["", f"MLflow: `{t['uri']}`, parent run `{t['parent_run_id']}`; "
                  f"{'seed' if t.get('variant_run_ids') else 'variant'} runs: "
                  + ", ".join(f"{v} `{rid}`" for v, rid in t["child_run_ids"].items()),
                  "", f"Browse: `python -m flows ui --tracking-uri {t['uri']}` (the MLflow UI on loopback), "
                  f"then open {experiment_url(UI_BASE, t['experiment_id'])}; `python -m flows compare` "
                  "prints the comparison."]
    if result.get("registry"):
        lines += ["", f"Model registry: {result['registry']}"]
    if result.get("dvc"):
        lines += ["", f"DVC: {result['dvc']}"]
    if result["failed"]:
        lines += ["", "## Failures", *[f"- **{v}**: {why}" for v, why in result["failed"].items()]]
    study = result.get("study")
    if study:
        from tasks.study import TITLE, report_body, tables

        (header, body), _ = tables(study)
        lines += ["", f"## {TITLE}", "", report_body(study), "",
                  "Plots: reports/study/ (strip.png, expected_best.png, bands.png)."]
    try:
        if study:
            create_table_artifact([dict(zip(["rank", "variant", *header[2:]], row)) for row in body],
                                  key="study-ranking", description=f"variants best first by mean {study['headline']} "
                                  f"over {study['n']} seeds, with 95% intervals (reports/study/study.md)")
        create_table_artifact(rows, key="variant-metrics", description="final metrics of every variant "
                              "(selected checkpoint, evaluate stage)")
        create_markdown_artifact("\n".join(lines), key="pipeline-summary",
                                 description="what this run produced and where")
    except Exception as e:  # a view of the results: never fails the run
        log.warning("Prefect artifacts not written: %s: %s", type(e).__name__, e)


def task_runner(n_parallel: int, dask_address: str | None):
    """Where the variants' stages run when they do not run on the flow's own thread: an existing
    Dask cluster (its workers must see this folder; give them one thread each), else worker
    processes on this machine.  Processes rather than threads because torch's global RNG (weight
    initialisation, dropout, gradient-penalty interpolation, augmentation) is shared by the threads
    of a process: concurrent variants in threads would draw from each other's stream, and a run
    would depend on their interleaving."""
    if dask_address:
        from prefect_dask import DaskTaskRunner

        return DaskTaskRunner(address=dask_address)
    return ProcessPoolTaskRunner(max_workers=n_parallel)


# The per-variant steps of the flow; each after the first waits on the one named beside it.
VARIANT_STEPS = (("train", train_task, None), ("select", select_task, "train"),
          ("evaluate", evaluate_task, "select"), ("export", export_task, "select"))


def _run(params: Params, tracker: Tracker | None, n_parallel: int, progress: bool,
         dask_address: str | None = None) -> dict[str, Any]:
    # Absolute paths: on a Dask cluster the stages run in worker processes with their own cwd.
    layout = Layout(Path.cwd().resolve())
    prepared = prepare_task(params, tracker, layout)
    if n_parallel == 1 and not dask_address:
        outcomes = _run_here(params, tracker, layout, progress)
    else:
        outcomes = _run_on_runner(params, tracker, layout, progress and not dask_address,
                                  task_runner(n_parallel, dask_address))
    results, failed = {}, {}
    for v, stages in outcomes.items():
        results[v] = {}
        for stage, (state, value) in stages.items():
            if state.is_completed():
                results[v][stage] = value()
                if tracker is not None and not results[v][stage].get("tracking_complete", True):
                    tracker.offline = True  # logging failed in the worker that ran this stage
            else:
                failed.setdefault(v, _reason(stage, state))
        if tracker is not None:
            tracker.finish(v, ok=v not in failed, reason=failed.get(v))
    out = {"prepare": prepared, "variants": results, "failed": failed}
    if params.seeds is not None:
        out["study"] = _study(params, tracker, layout, failed)
    return out


def _study(params: Params, tracker: Tracker | None, layout: Layout, failed: dict[str, str]) -> dict[str, Any] | None:
    """The comparison over seeds once every cell is done; a study with a failed cell has none
    (the interval of a variant would silently rest on fewer seeds than the others')."""
    if failed:
        if tracker is not None:
            for v in params.variant_names:
                mine = [c.name for c in params.cells if c.variant == v and c.name in failed]
                tracker.finish_variant(v, ok=False, reason=f"failed: {', '.join(mine)}" if mine else
                                       f"the study was not computed: {', '.join(failed)} failed")
        return None
    state = study_task(params=params, tracker=tracker, layout=layout, return_state=True)
    if not state.is_completed():
        failed["study"] = _reason("study", state)
        if tracker is not None:
            tracker.abort(failed["study"])
        return None
    return state.result()


def _run_here(params: Params, tracker: Tracker | None, layout: Layout, progress: bool) -> dict[str, dict]:
    """One cell after another, every stage on this thread: the thread that prepared the data.

    Not on a worker thread: torch's CPU kernels run in OpenMP (libgomp) thread teams, one team
    per calling thread.  Once the flow's thread has used one (the prepare stage trains the
    feature classifier), a second thread doing the training would make a second team, more
    OpenMP threads than cores.  Task states, retries and the UI are Prefect's all the same: a
    task called in a flow runs on the caller's thread."""
    outcomes: dict[str, dict] = {}
    for i, v in enumerate(c.name for c in params.cells):
        outcomes[v] = {}
        for stage, task, upstream in VARIANT_STEPS:
            if upstream is not None and (upstream not in outcomes[v] or not outcomes[v][upstream][0].is_completed()):
                continue  # a failed (or skipped) stage's dependents do not run; the failure is reported once
            extra = {"position": i, "progress": progress} if stage == "train" else {}
            state = task(params=params, variant=v, tracker=tracker, layout=layout, **extra, return_state=True)
            outcomes[v][stage] = (state, state.result)
    return outcomes


def _run_on_runner(params: Params, tracker: Tracker | None, layout: Layout, progress: bool,
                   runner) -> dict[str, dict]:
    """All cells submitted to ``runner`` at once; it runs as many as it has workers."""
    cells = [c.name for c in params.cells]
    futures: dict[str, dict[str, Any]] = {v: {} for v in cells}
    # Submitted stage by stage, so that every training run is queued before any task that waits
    # on one: a worker blocked on an upstream task never holds back a training run.
    with runner:
        for stage, task, upstream in VARIANT_STEPS:
            for i, v in enumerate(cells):
                extra = {"position": i, "progress": progress} if stage == "train" else {}
                futures[v][stage] = runner.submit(
                    task, {"params": params, "variant": v, "tracker": tracker, "layout": layout, **extra},
                    wait_for=[futures[v][upstream]] if upstream else None)
        wait([f for fs in futures.values() for f in fs.values()])
    return {v: {stage: (f.state, f.result) for stage, f in fs.items()} for v, fs in futures.items()}


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
    if not Path(".dvc").is_dir():
        return "not recorded in dvc.lock: no DVC repository here (dvc init)"
    from tasks.stages import dvc_yaml

    params = load_params(params_file)
    current = Path("dvc.yaml").read_text() if Path("dvc.yaml").is_file() else ""
    # A study's dvc.yaml lists its seeds (a matrix): it must be the one these settings generate.
    if (params.seeds is not None or "\n  study:\n" in current) and current != dvc_yaml(params):
        why = ("not recorded in dvc.lock: dvc.yaml is not the one these settings generate (seeds changed); run: "
               "python -m flows dvc-yaml, then dvc commit --force")
        log.warning(why)
        return why
    proc = subprocess.run([sys.executable, "-m", "dvc", "commit", "--force"], capture_output=True, text=True)
    if proc.returncode != 0:
        why = (proc.stderr.strip() or proc.stdout.strip())[-1000:]
        log.warning("dvc commit failed: %s", why)
        return f"not recorded in dvc.lock: dvc commit failed: {why}"
    return "recorded in dvc.lock"
