"""Command line: ``python -m flows <command>``.

  run                     the whole pipeline as one Prefect flow (tracked in MLflow)
  check                   validate the settings and inputs, print the resolved variants
  prepare                 stage 1 (the dvc.yaml commands call these directly, without Prefect)
  train    --variant V    stage 2
  select   --variant V    stage 3
  evaluate --variant V    stage 4
  export   --variant V    stage 5
  compare                 table + plot of the variants of the latest run, from MLflow -> reports/
  rerun    RUN_ID         redo a past MLflow run exactly and check that it matches
  serve    --cron EXPR    serve the pipeline as a Prefect deployment on a schedule
  variants                list the registered variants
  datasets                list the data sets

Exit codes: 0 success, 1 a stage failed while working, 2 bad settings or input (nothing done).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("flows")

EPILOG = """examples:
  python -m flows run                                   # everything, settings from params.yaml
  python -m flows run --set train.steps=500 --set train.variants='{mlp: {}}'
  python -m flows train --variant dcgan --set train.batch_size=128
  python -m flows compare                               # best variant first, reports/compare.md
  python -m flows rerun 3f2c...                         # redo an MLflow run, compare hashes and metrics
  python -m flows serve --cron "0 3 * * *"              # nightly runs through Prefect
  python -m flows variants
"""


def _common(p: argparse.ArgumentParser, variant: bool = False) -> None:
    p.add_argument("--params", default="params.yaml", metavar="FILE",
                   help="settings file (default: params.yaml in the current folder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, YAML syntax for the value (repeatable), e.g. train.steps=500")
    if variant:
        p.add_argument("--variant", required=True, metavar="NAME",
                       help="a variant named in train.variants of the settings file")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def _dask(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dask-address", default=os.environ.get("GAN_PIPELINE_DASK_ADDRESS"), metavar="ADDR",
                   help="run the variants' stages on this Dask scheduler (tcp://host:8786) through "
                   "prefect-dask; its workers must see this folder (default: $GAN_PIPELINE_DASK_ADDRESS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows", description="GAN experiment pipeline: prepare -> train -> select -> "
        "evaluate -> export, orchestrated by Prefect, versioned by DVC, tracked in MLflow.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the whole pipeline as one Prefect flow, logged to MLflow",
                       description="Prepare the data once, then train, select, evaluate and export every "
                       "variant in train.variants (train.parallel at a time). Logs a parent MLflow run with "
                       "a child run per variant, and records the outputs in dvc.lock when run with "
                       "params.yaml unchanged.")
    _common(p)
    _dask(p)
    p.add_argument("--force-flow", action="store_true",
                   help="run the flow even when nothing changed since the last logged run")
    p = sub.add_parser("prepare", help="stage 1: load, split and version the data set",
                       description="Writes data/prepared/ (arrays, manifest, feature classifier, real statistics).")
    _common(p)
    for name, text in [("train", "stage 2: train one variant (resumes from its last checkpoint)"),
                       ("select", "stage 3: pick the variant's best checkpoint on held-out data"),
                       ("evaluate", "stage 4: final metrics of the selected checkpoint -> metrics/<variant>.json"),
                       ("export", "stage 5: sample grid, single images, arrays, latent walk -> samples/<variant>/")]:
        p = sub.add_parser(name, help=text, description=text)
        _common(p, variant=True)
    p = sub.add_parser("check", help="validate the settings and inputs, print the resolved variants; do nothing else",
                       description="Parse and validate the settings file (and overrides) exactly as `run` does, "
                       "print the resolved spec of every variant, and exit: 0 valid, 2 invalid.")
    _common(p)
    p = sub.add_parser("compare", help="compare the variants of a pipeline run from MLflow -> reports/",
                       description="Print the variants of the newest pipeline run (or --run ID, or --all-runs) "
                       "best first with their metrics, sample counts, steps and training time, and write the same "
                       "table as reports/compare.md with a plot of the held-out metric over training steps "
                       "(reports/compare.png).")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: tracking.experiment of --params)")
    p.add_argument("--run", default=None, metavar="RUN_ID", help="a pipeline (parent) run id; default: the newest")
    p.add_argument("--all-runs", action="store_true", help="every variant run of the experiment, not one pipeline run")
    p.add_argument("--out", default="reports", metavar="DIR", help="where compare.md/compare.png go (default: reports)")
    p.add_argument("--params", default="params.yaml", metavar="FILE", help="settings file for the defaults")
    p.add_argument("--tracking-uri", default=None, help="MLflow store (default: as `run` resolves it)")
    p.add_argument("--quiet", action="store_true", help=argparse.SUPPRESS)
    p = sub.add_parser("rerun", help="redo a past MLflow run exactly and compare hashes and metrics",
                       description="Rebuild the configuration recorded with an MLflow run (a pipeline run or one "
                       "variant's run): its resolved settings, seed and thread count, with the code at its "
                       "recorded commit. Runs the pipeline afresh in reruns/<run id>/, logs it to the same store "
                       "(tag rerun_of), and compares the data hash, checkpoint hashes and every final metric. "
                       "Exit 0 when identical, 1 when something differs, 2 when it cannot rerun.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--allow-code-change", action="store_true",
                   help="rerun even when the code differs from the recorded commit")
    p.add_argument("--workdir", default=None, help="folder for the rerun (default: reruns/<run id>)")
    p.add_argument("--tracking-uri", default=None, help="MLflow store holding the run (default: as `run` resolves it)")
    p.add_argument("--params", default="params.yaml", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")
    p = sub.add_parser("serve", help="serve the pipeline as a Prefect deployment with a cron schedule",
                       description="Create (or update) the deployment gan-pipeline/NAME with a cron schedule and "
                       "the given parameters, and execute its scheduled and manual runs until stopped (Ctrl-C). "
                       "Needs a Prefect server: set PREFECT_API_URL (e.g. `prefect server start`), else a "
                       "temporary one lives as long as this process.")
    p.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *" (03:00 every day)')
    p.add_argument("--timezone", default="UTC", help="time zone of the schedule (default: UTC)")
    p.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
    _common(p)
    _dask(p)
    sub.add_parser("variants", help="list the registered variants (presets) and components",
                   description="List the presets usable as keys of train.variants, and the components "
                   "(generator/discriminator architectures, losses) a variant can compose.")
    sub.add_parser("datasets", help="list the data sets prepare.dataset accepts",
                   description="List the data sets prepare.dataset accepts.")
    return parser


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _list_variants() -> int:
    from gan_models import variants as V

    print("Variants (use as keys of train.variants in params.yaml; `preset:` picks one under another name):")
    for e in V.VARIANTS:
        print(f"  {e.name:<16} {e.description}")
    for title, reg in (("Generator architectures (generator.arch)", V.GENERATORS),
                       ("Discriminator architectures (discriminator.arch)", V.DISCRIMINATORS),
                       ("Losses (loss.name)", V.LOSSES)):
        print(f"\n{title}:")
        for e in reg:
            print(f"  {e.name:<16} {e.description}")
    return 0


def _list_datasets() -> int:
    from gan_models.data import DATASETS

    print("Data sets (prepare.dataset):")
    for e in DATASETS:
        print(f"  {e.name:<14} {e.description}")
    return 0


def _stage(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.config import load_params

    params = load_params(args.params, args.overrides)
    if args.command == "check":
        return {"valid": True, "variants": {v: {"steps": params.variant_steps(v), **params.variant_spec(v)}
                                             for v in params.variant_names}}
    if args.command == "prepare":
        from tasks.prepare import prepare

        return prepare(params)
    if args.variant not in params.variant_names:
        from tasks.config import ConfigError

        raise ConfigError(f"--variant {args.variant!r} is not in train.variants; configured: "
                          f"{', '.join(params.variant_names)}")
    fn: Callable[..., dict[str, Any]]
    if args.command == "train":
        from tasks.train import train

        return train(params, args.variant, progress=not args.quiet)
    if args.command == "select":
        from tasks.select import select as fn
    elif args.command == "evaluate":
        from tasks.evaluate import evaluate as fn
    else:
        from tasks.export import export as fn
    return fn(params, args.variant)


def _quiet_prefect() -> None:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    # Prefect waits 20 s for its temporary server; a first start on a fresh install (bytecode
    # compilation, database migration) on a busy 2-core machine takes longer than that.
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")


def run_pipeline(params_file: str, overrides: list[str], progress: bool,
                 dask_address: str | None = None, force: bool = False) -> dict[str, Any]:
    """Validate, then run the flow in this folder under the project lock."""
    _quiet_prefect()
    from tasks.config import load_params

    params = load_params(params_file, overrides)  # fail on bad settings before starting Prefect
    from tasks.common import Layout, ProjectLock, finished_state
    from tasks.tracking import tracking_uri

    tracking = tracking_uri(params) if params.tracking.enabled else "off"
    with ProjectLock():
        if not force:
            done = _already_done(params, tracking)
            if done is not None:
                return done
        # Prefect's temporary server takes seconds to start: start it while the tracking store
        # is checked (and, for a new sqlite store, created), instead of one after the other.
        prefect_start = _Background(_start_prefect)
        try:
            if params.tracking.enabled:
                from tasks.tracking import Tracker

                Tracker.check(params)  # fail on an unreachable tracking store before any work
            from flows.pipeline import pipeline
        except BaseException:
            prefect_start.join()  # let it finish, so that the server it started is stopped at exit
            raise

        prefect_start.result()
        result = pipeline(params_file=params_file, overrides=overrides, progress=progress,
                          dask_address=dask_address)
        t = result.get("tracking")
        if not result["failed"] and (t is None or t["complete"]):
            state = finished_state(params, Layout(), tracking)
            if state:
                from gan_models.checkpoint import atomic_write_json

                atomic_write_json(LAST_RUN, {"state": state, "tracking": t, "finished": time.time()})
        return result


LAST_RUN = Path(".pipeline") / "last_run.json"


def _already_done(params, tracking: str) -> dict[str, Any] | None:
    """The result of the last run when nothing changed since it finished and was fully logged:
    then `run` has nothing to do and skips starting Prefect (as `dvc repro` would)."""
    from tasks.common import Layout, finished_state

    try:
        last = json.loads(LAST_RUN.read_text())
    except (OSError, ValueError):
        return None
    if finished_state(params, Layout(), tracking) != last.get("state"):
        return None
    variants = {v: {"evaluate": json.loads(Layout().metrics_file(v).read_text())} for v in params.variant_names}
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(last["finished"]))
    return {"variants": variants, "failed": {}, "tracking": last.get("tracking"),
            "skipped": f"nothing to do: settings, code and every stage's outputs are unchanged since the run "
                       f"of {when}, which is logged already (--force-flow runs the flow anyway)"}


def _run_flow(args: argparse.Namespace) -> dict[str, Any]:
    return run_pipeline(args.params, args.overrides, not args.quiet, args.dask_address, args.force_flow)


def _settings_and_store(args: argparse.Namespace):
    """The settings file's params (defaults when there is none) and the MLflow store to read:
    --tracking-uri, else what `run` would use."""
    from tasks.config import Params, load_params
    from tasks.tracking import tracking_uri

    params = load_params(args.params, []) if os.path.exists(args.params) else Params()
    return params, args.tracking_uri or tracking_uri(params)


def _compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from mlflow.tracking import MlflowClient

    from tasks import compare as C

    params, uri = _settings_and_store(args)
    client = MlflowClient(uri)
    data = C.collect(client, args.experiment or params.tracking.experiment, args.run, args.all_runs)
    header, body = C.table(data)
    print(f"{data['label']} (MLflow store {uri}); best first:\n")
    print(C.text_table(header, body))
    files = C.write_report(client, data, Path(args.out))
    print("\nwritten: " + ", ".join(str(p) for p in files.values()))
    return 0


def _rerun(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flows.rerun import rerun

    same, report = rerun(args.run_id, _settings_and_store(args)[1], allow_code_change=args.allow_code_change,
                         workdir=Path(args.workdir).resolve() if args.workdir else None,
                         run_pipeline=run_pipeline, progress=not args.quiet)
    print(report)
    return 0 if same else 1


def _serve(args: argparse.Namespace) -> int:
    _quiet_prefect()
    from tasks.config import load_params

    load_params(args.params, args.overrides)  # refuse bad settings now, not at 3 a.m.
    from flows.pipeline import pipeline

    _start_prefect()
    print(f"serving gan-pipeline/{args.name} on cron {args.cron!r} ({args.timezone}); Ctrl-C stops "
          "(the schedule stays active on the server)", file=sys.stderr)
    from prefect.schedules import Cron

    pipeline.serve(name=args.name, schedule=Cron(args.cron, timezone=args.timezone),
                   parameters={"params_file": args.params, "overrides": args.overrides, "progress": False,
                               "dask_address": args.dask_address},
                   pause_on_shutdown=False, print_starting_message=False)
    return 0


class _Background:
    """``fn()`` on a daemon thread; ``result()`` waits for it and re-raises what it raised."""

    def __init__(self, fn: Callable[[], Any]):
        import threading

        self._out: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(fn,), name=f"background-{fn.__name__}", daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self._out["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._out["error"] = e

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if "error" in self._out:
            raise self._out["error"]
        return self._out.get("value")


def _start_prefect() -> None:
    """Start Prefect's temporary server (when no PREFECT_API_URL is set) under a lock in
    PREFECT_HOME: two runs starting at once would otherwise race in its database migration."""
    import fcntl
    from pathlib import Path

    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_HOME

    home = Path(PREFECT_HOME.value())
    home.mkdir(parents=True, exist_ok=True)
    with open(home / ".gan-pipeline-start.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        with get_client(sync_client=True) as client:
            client.hello()


def _print_summary(result: dict[str, Any]) -> None:
    if result.get("skipped"):
        print(f"Pipeline: {result['skipped']}.")
    else:
        print("\nPipeline finished." if not result.get("failed") else "\nPipeline finished with failures.")
    for v, stages in result["variants"].items():
        if v in result.get("failed", {}):
            print(f"  {v:<14} FAILED: {result['failed'][v]}")
            continue
        m = stages.get("evaluate", {})
        keys = [k for k in ("fid", "is_mean", "classes_covered", "confident_fraction", "modes_covered",
                            "high_quality_fraction", "reverse_kl") if k in m]
        shown = ", ".join(f"{k}={m[k]:.4g}" for k in keys)
        print(f"  {v:<14} step {m.get('step', '?')}: {shown}  ({m.get('extractor', '')} features)")
        print(f"  {'':<14} samples: samples/{v}/   metrics: metrics/{v}.json")
    if result.get("tracking"):
        t = result["tracking"]
        print(f"MLflow: {t['uri']} (parent run {t['parent_run_id']}); browse with: mlflow ui --backend-store-uri {t['uri']}")
    if result.get("registry"):
        print(f"Model registry: {result['registry']}")
    if result.get("dvc"):
        print(f"DVC: {result['dvc']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "variants":
        return _list_variants()
    if args.command == "datasets":
        return _list_datasets()
    _setup_logging(args.quiet)
    from gan_models.checkpoint import CheckpointError
    from gan_models.data import DataError
    from tasks.common import RunLockedError
    from tasks.config import ConfigError
    from tasks.tracking import TrackingError

    from tasks.compare import CompareError

    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "rerun":
            return _rerun(args)
        if args.command == "serve":
            return _serve(args)
        if args.command == "run":
            _print_summary(_run_flow(args))
        else:
            print(json.dumps(_stage(args), indent=2, default=str))
        return 0
    except (ConfigError, DataError, TrackingError, RunLockedError, CompareError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (CheckpointError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(f"error: {e.strerror}", file=sys.stderr)
            return 1
        raise
    except KeyboardInterrupt:
        print("interrupted; rerun the same command to resume from the last checkpoint", file=sys.stderr)
        return 130
    except Exception as e:
        if type(e).__name__ == "PipelineFailed":
            _print_summary(e.result)
            print(f"error: the pipeline finished with failures: {e}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
