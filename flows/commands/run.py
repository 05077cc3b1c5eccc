"""``python -m flows run``: validate, then run the whole pipeline as one Prefect flow in this
folder, under the project lock; print what it produced."""

from __future__ import annotations

import argparse
from typing import Any

from flows.errors import PipelineFailed
from flows.prefect_server import Background, quiet_prefect, start_prefect


def run_pipeline(params_file: str, overrides: list[str], progress: bool,
                 dask_address: str | None = None, force: bool = False) -> dict[str, Any]:
    """Validate, then run the flow in this folder under the project lock."""
    quiet_prefect()
    from tasks.config import load_params

    params = load_params(params_file, overrides)  # fail on bad settings before starting Prefect
    from tasks.runtime import project_lock

    with project_lock():
        if not force:
            from flows.fastpath import already_done

            done = already_done(params)
            if done is not None:
                return done
        # Prefect's temporary server takes seconds to start: start it while the tracking store
        # is checked (and, for a new sqlite store, created), instead of one after the other.
        # Prefect's server models are imported here first: both stores use SQLAlchemy, whose mapper
        # configuration is process-wide, and MLflow configuring its mappers while the other thread is
        # halfway through importing Prefect's failed once ("expression 'FlowRun' failed to locate a name").
        import prefect.server.database.orm_models  # noqa: F401
        prefect_start = Background(start_prefect)
        try:
            if params.tracking.enabled:
                from tasks.reporting.tracking import Tracker

                Tracker.check(params)  # fail on an unreachable tracking store before any work
            from flows.pipeline import pipeline
        except BaseException:
            prefect_start.join()  # let it finish, so that the server it started is stopped at exit
            raise

        prefect_start.result()
        return pipeline(params_file=params_file, overrides=overrides, progress=progress,
                        dask_address=dask_address)


def print_summary(result: dict[str, Any]) -> None:
    from gan_models.metrics import table_scores

    if result.get("skipped"):
        print(f"Pipeline: {result['skipped']}.")
    else:
        print("\nPipeline finished." if not result.get("failed") else "\nPipeline finished with failures.")
    keys = [name for name, _ in table_scores(summary=True)]
    for v, stages in result["variants"].items():
        if v in result.get("failed", {}):
            print(f"  {v:<14} FAILED: {result['failed'][v]}")
            continue
        m = stages.get("evaluate", {})
        shown = ", ".join(f"{k}={m[k]:.4g}" for k in keys if k in m)
        print(f"  {v:<14} step {m.get('step', '?')}: {shown}  ({m.get('extractor', '')} features)")
        print(f"  {'':<14} samples: samples/{v}/   metrics: metrics/{v}.json")
    if result.get("study"):
        from tasks.study import ranking_text

        print("\n" + ranking_text(result["study"]))
        print("  the study: reports/study/study.md (table, significance matrix, plots); per variant: metrics/<variant>.json")
    if result.get("tracking"):
        t = result["tracking"]
        from tasks.reporting.tracking import UI_BASE, experiment_url

        print(f"MLflow: {t['uri']} (parent run {t['parent_run_id']}); browse with: python -m flows ui "
              f"--tracking-uri {t['uri']}, then open {experiment_url(UI_BASE, t['experiment_id'])}")
    if result.get("registry"):
        print(f"Model registry: {result['registry']}")
    if result.get("dvc"):
        print(f"DVC: {result['dvc']}")


def main(args: argparse.Namespace) -> int:
    try:
        result = run_pipeline(args.params, args.overrides, not args.quiet, args.dask_address, args.force_flow)
    except PipelineFailed as e:
        print_summary(e.result)
        raise
    print_summary(result)
    return 0
