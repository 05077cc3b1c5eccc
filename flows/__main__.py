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
  human-eval --variant V  people judge real vs generated images in a browser -> HYPE∞ (tasks/human_eval.py)
  variants                list the registered variants
  datasets                list the data sets
  dvc-yaml                write dvc.yaml from the stage table (tasks/stages.py)

The parser is in flows/cli.py, the no-change fast path of `run` in flows/fastpath.py, Prefect's
server start in flows/prefect_server.py, the flow itself in flows/pipeline.py.

Exit codes: 0 success, 1 a stage failed while working, 2 bad settings or input (nothing done).
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from flows.cli import build_parser
from flows.prefect_server import Background, quiet_prefect, start_prefect

log = logging.getLogger("flows")

def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _plugins_of(params_file: str) -> None:
    """Load the plugins ``params_file`` names (when it exists) and the installed entry-point ones."""
    import yaml

    from tasks.config import ConfigError, load_plugins

    path = Path(params_file)
    try:
        doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    load_plugins((doc or {}).get("plugins") if isinstance(doc, dict) else None, path)


def _entry_line(e, width: int = 16) -> str:
    from gan_models.registry import BUILTIN

    return f"  {e.name:<{width}} {e.description}" + ("" if e.source == BUILTIN else f"  [plugin {e.source}]")


def _list_variants(args: argparse.Namespace) -> int:
    _plugins_of(args.params)
    from gan_models import variants as V
    from gan_models.features import EXTRACTORS
    from gan_models.losses import AUGMENTATIONS
    from gan_models.metrics import METRICS
    from gan_models.plugins import loaded

    print("Variants (use as keys of train.variants in params.yaml; `preset:` picks one under another name):")
    for e in V.VARIANTS:
        print(_entry_line(e))
    for title, reg in (("Generator architectures (generator.arch)", V.GENERATORS),
                       ("Translation generators (generator.arch with loss pix2pix or cyclegan)", V.TRANSLATORS),
                       ("Discriminator architectures (discriminator.arch)", V.DISCRIMINATORS),
                       ("Losses (loss.name)", V.LOSSES),
                       ("Augmentation policies (tricks.augment)", AUGMENTATIONS),
                       ("Feature extractors (prepare.extractor)", EXTRACTORS),
                       ("Metrics (evaluate.metrics)", METRICS)):
        print(f"\n{title}:")
        for e in reg:
            print(_entry_line(e))
    import dataclasses

    from gan_models.losses import Tricks

    print("\nSettings of any variant (train.variants.<name>.KEY):")
    for key, what in V.TOP_LEVEL_KEYS.items():
        if key == "tricks":
            what = "loss tricks: {" + ", ".join(f.name for f in dataclasses.fields(Tricks)) + "}"
        print(f"  {key:<16} {what}")
    print("\nOptions of any image discriminator (discriminator.KEY):")
    for key, what in V.ANY_DISCRIMINATOR.items():
        print(f"  {key:<16} {what}")
    from gan_models.attributes import ATTRIBUTES

    print("\nSeveral conditioning inputs, any image variant (conditioning: {inputs: [...], embed: N}):")
    for key, what in V.MULTI_CONDITIONING.items():
        print(f"  {key:<16} {what}")
    print("\nAttributes prepare measures on grey images (conditioning.inputs; metrics attr_r_<name>):")
    for e in ATTRIBUTES:
        print(_entry_line(e))
    plugins = loaded()
    print("\nPlugins: " + ("; ".join(p.describe() for p in plugins) if plugins else
                           "none (params.yaml `plugins:` or the `gan_pipeline.plugins` entry point adds some)"))
    return 0


def _list_datasets(args: argparse.Namespace) -> int:
    _plugins_of(args.params)
    from gan_models.data import DATASETS

    print("Data sets (prepare.dataset):")
    for e in DATASETS:
        print(_entry_line(e, 14))
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


def run_pipeline(params_file: str, overrides: list[str], progress: bool,
                 dask_address: str | None = None, force: bool = False) -> dict[str, Any]:
    """Validate, then run the flow in this folder under the project lock."""
    quiet_prefect()
    from tasks.config import load_params

    params = load_params(params_file, overrides)  # fail on bad settings before starting Prefect
    from tasks.common import project_lock

    with project_lock():
        if not force:
            from flows.fastpath import already_done

            done = already_done(params)
            if done is not None:
                return done
        # Prefect's temporary server takes seconds to start: start it while the tracking store
        # is checked (and, for a new sqlite store, created), instead of one after the other.
        prefect_start = Background(start_prefect)
        try:
            if params.tracking.enabled:
                from tasks.tracking import Tracker

                Tracker.check(params)  # fail on an unreachable tracking store before any work
            from flows.pipeline import pipeline
        except BaseException:
            prefect_start.join()  # let it finish, so that the server it started is stopped at exit
            raise

        prefect_start.result()
        return pipeline(params_file=params_file, overrides=overrides, progress=progress,
                        dask_address=dask_address)


def _run_flow(args: argparse.Namespace) -> dict[str, Any]:
    return run_pipeline(args.params, args.overrides, not args.quiet, args.dask_address, args.force_flow)


def _settings_and_store(args: argparse.Namespace):
    """The settings (the file with --set applied; defaults when there is no file) and the MLflow
    store to read: --tracking-uri, else what `run` would use."""
    from tasks.config import Params, apply_overrides, load_params
    from tasks.tracking import tracking_uri

    if os.path.exists(args.params):
        params = load_params(args.params, args.overrides, check_variants=False)
    else:
        params = Params.model_validate(apply_overrides({}, args.overrides))
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


def _ui(args: argparse.Namespace) -> int:
    """`mlflow server` for this project's store, on loopback unless --host says otherwise, with the
    link that opens the experiment in the model-training view."""
    from mlflow.tracking import MlflowClient

    from tasks.tracking import TrackingError, experiment_url

    params, uri = _settings_and_store(args)
    base = f"http://{args.host}:{args.port}"
    try:
        exp = MlflowClient(uri).get_experiment_by_name(params.tracking.experiment)
    except Exception as e:
        raise TrackingError(f"cannot read the MLflow store {uri!r}: {type(e).__name__}: {e}") from None
    if uri.startswith(("http://", "https://")):  # already a tracking server: it serves the UI itself
        print(f"{uri} is a tracking server with its own UI: open "
              f"{experiment_url(uri, exp.experiment_id) if exp is not None else uri}")
        return 0
    if exp is None:
        print(f"no experiment {params.tracking.experiment!r} in {uri} yet (python -m flows run creates it); "
              f"serving the store at {base}", flush=True)
    else:
        print(f"MLflow UI for {uri}: open {experiment_url(base, exp.experiment_id)}  (Ctrl-C stops it)", flush=True)
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": os.environ.get("MLFLOW_SERVER_ENABLE_JOB_EXECUTION",
                                                                             "false")}
    cmd = [sys.executable, "-m", "mlflow", "server", "--host", args.host, "--port", str(args.port),
           "--backend-store-uri", uri, "--workers", "1"]
    sys.stdout.flush()
    os.execve(sys.executable, cmd, env)  # the server is this process from now on: signals reach it
    return 0  # not reached


def _rerun(args: argparse.Namespace) -> int:
    from pathlib import Path

    from flows.rerun import rerun

    same, report = rerun(args.run_id, _settings_and_store(args)[1], allow_code_change=args.allow_code_change,
                         workdir=Path(args.workdir).resolve() if args.workdir else None,
                         run_pipeline=run_pipeline, progress=not args.quiet)
    print(report)
    return 0 if same else 1


def _dvc_yaml(args: argparse.Namespace) -> int:
    from gan_models.checkpoint import atomic_write_bytes
    from tasks.config import load_params
    from tasks.stages import dvc_yaml

    text = dvc_yaml(load_params(args.params))
    path = Path(args.out)
    if args.check:
        same = path.exists() and path.read_text() == text
        print(f"{path} is up to date with the stage table" if same else
              f"{path} differs from the stage table and {args.params} (its variants, plugins); run: "
              "python -m flows dvc-yaml", file=sys.stderr)
        return 0 if same else 1
    atomic_write_bytes(path, text.encode())
    print(f"written: {path}")
    return 0


def _serve(args: argparse.Namespace) -> int:
    quiet_prefect()
    from tasks.config import load_params

    load_params(args.params, args.overrides)  # refuse bad settings now, not at 3 a.m.
    from flows.pipeline import pipeline

    start_prefect()
    print(f"serving gan-pipeline/{args.name} on cron {args.cron!r} ({args.timezone}); Ctrl-C stops "
          "(the schedule stays active on the server)", file=sys.stderr)
    from prefect.schedules import Cron

    pipeline.serve(name=args.name, schedule=Cron(args.cron, timezone=args.timezone),
                   parameters={"params_file": args.params, "overrides": args.overrides, "progress": False,
                               "dask_address": args.dask_address},
                   pause_on_shutdown=False, print_starting_message=False)
    return 0


def _human_scores(params, uri: str, variant: str, layout) -> int:
    """Score the stored answers -> metrics/human/<variant>.json, then log them to the variant's
    MLflow run (the one tagged with the study's checkpoint); a missing run or store is reported,
    the file is written anyway."""
    from tasks import human_eval as H
    from tasks.tracking import TrackingError, log_to_run, variant_run

    record = H.write_scores(layout, variant)
    path = H.scores_file(layout, variant)
    if not record["n_answers"]:
        print(f"{variant}: no answers yet in {H.study_dir(layout, variant) / H.ANSWERS}")
    else:
        ci = record["hype_inf_ci"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{variant}: HYPE∞ {record['hype_inf']:.3f} (95% CI {fmt(ci[0] if ci else None)}-"
              f"{fmt(ci[1] if ci else None)}; 0.5 = indistinguishable), generated judged real "
              f"{fmt(record['fake_error'])}, real judged fake {fmt(record['real_error'])}; {record['n_answers']} "
              f"answers from {record['n_evaluators']} evaluator{'s' * (record['n_evaluators'] != 1)} "
              f"({record['n_complete']} complete)")
    print(f"written: {path}")
    sha = record["checkpoint_sha256"]
    if not params.tracking.enabled:
        print("MLflow: not logged (tracking.enabled is false)")
        return 0
    try:
        run = variant_run(uri, params.tracking.experiment, variant, sha)
        if run is None:
            print(f"MLflow: not logged: no run of variant {variant!r} with checkpoint_sha256 {sha[:12]}... in "
                  f"experiment {params.tracking.experiment!r} of {uri} (`python -m flows run` logs one); "
                  f"the scores are in {path} only", file=sys.stderr)
            return 0
        log_to_run(uri, run.info.run_id, H.mlflow_metrics(record), step=record["n_answers"], artifact=path,
                   artifact_path="human")
    except TrackingError as e:
        print(f"MLflow: not logged: {e}", file=sys.stderr)
        return 0
    print(f"MLflow: human/hype_inf and the other human/* metrics logged to run {run.info.run_id} ({variant}) in {uri}")
    return 0


def _human_eval(args: argparse.Namespace) -> int:
    """Serve the variant's study until Ctrl-C / SIGTERM, then score it; --score only scores."""
    import signal

    from tasks import human_eval as H
    from tasks.common import Layout
    from tasks.config import ConfigError, load_params
    from tasks.tracking import tracking_uri

    params = load_params(args.params, args.overrides)
    uri = args.tracking_uri or tracking_uri(params)
    layout = Layout()
    folder = H.study_dir(layout, args.variant)
    if args.variant not in params.variant_names and not (folder / H.STUDY).exists():
        raise ConfigError(f"--variant {args.variant!r} is not in train.variants; configured: "
                          f"{', '.join(params.variant_names)}")
    if args.score:
        return _human_scores(params, uri, args.variant, layout)
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be in 0..65535, got {args.port}")
    H.selected_sha256(layout, args.variant)  # no selected checkpoint: say which command to run, first
    server = H.make_server(args.host, args.port)  # a port in use fails now, before a study is made
    try:
        with H.serving_lock(folder):
            H.open_study(layout, args.variant, args.n, args.seed, params.seed)
            server.study = study = H.Study(folder)
            rec = study.record
            answered = sum(len(a) for a in study.answers.values())
            host, port = server.server_address[:2]
            shown = "127.0.0.1" if host == "0.0.0.0" else host
            print(f"Human evaluation of {args.variant} (checkpoint step {rec.get('step')}): {rec['n']} images, "
                  f"{rec['n_real']} real + {rec['n_fake']} generated; study {folder}/ ({len(study.orders)} sessions, "
                  f"{answered} answers so far)", flush=True)
            print(f"open http://{shown}:{port}/  (listening on {host}; Ctrl-C stops and scores)", flush=True)

            def stop(signum, frame):
                raise KeyboardInterrupt
            previous = signal.signal(signal.SIGTERM, stop)
            try:
                server.serve_forever()
            except KeyboardInterrupt:
                pass
            finally:
                signal.signal(signal.SIGTERM, previous)
                server.server_close()  # waits for the requests in flight
    finally:
        server.server_close()
    print("stopped; scoring the answers", flush=True)
    return _human_scores(params, uri, args.variant, layout)


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
        keys = [k for k in ("l1", "psnr", "ssim", "label_preservation", "cycle_l1_aba", "fid", "is_mean",
                            "classes_covered", "confident_fraction", "independent_confident_fraction",
                            "clfpips_diversity_ratio",
                            "lpips_alex_diversity_ratio", "modes_covered", "high_quality_fraction", "reverse_kl")
                if k in m]
        shown = ", ".join(f"{k}={m[k]:.4g}" for k in keys)
        print(f"  {v:<14} step {m.get('step', '?')}: {shown}  ({m.get('extractor', '')} features)")
        print(f"  {'':<14} samples: samples/{v}/   metrics: metrics/{v}.json")
    if result.get("tracking"):
        t = result["tracking"]
        from tasks.tracking import UI_BASE, experiment_url

        print(f"MLflow: {t['uri']} (parent run {t['parent_run_id']}); browse with: python -m flows ui "
              f"--tracking-uri {t['uri']}, then open {experiment_url(UI_BASE, t['experiment_id'])}")
    if result.get("registry"):
        print(f"Model registry: {result['registry']}")
    if result.get("dvc"):
        print(f"DVC: {result['dvc']}")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("variants", "datasets", "dvc-yaml"):
        _setup_logging(args.quiet)
    from gan_models.checkpoint import CheckpointError
    from gan_models.data import DataError
    from tasks.common import RunLockedError
    from tasks.compare import CompareError
    from tasks.config import ConfigError
    from tasks.tracking import TrackingError

    # Commands that print their own result and return the exit code; the stages print JSON.
    own = {"variants": _list_variants, "datasets": _list_datasets, "dvc-yaml": _dvc_yaml, "compare": _compare,
           "rerun": _rerun, "ui": _ui, "serve": _serve, "human-eval": _human_eval}
    try:
        if args.command in own:
            return own[args.command](args)
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
