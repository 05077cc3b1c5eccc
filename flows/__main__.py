"""Command line: ``python -m flows <command>``.

  run                     the whole pipeline as one Prefect flow (tracked in MLflow)
  check                   validate the settings and inputs, print the resolved variants
  prepare                 stage 1 (the dvc.yaml commands call these directly, without Prefect)
  train    --variant V    stage 2
  select   --variant V    stage 3
  evaluate --variant V    stage 4
  export   --variant V    stage 5
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
from typing import Any, Callable

EPILOG = """examples:
  python -m flows run                                   # everything, settings from params.yaml
  python -m flows run --set train.steps=500 --set train.variants='{mlp: {}}'
  python -m flows train --variant dcgan --set train.batch_size=128
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


def _run_flow(args: argparse.Namespace) -> dict[str, Any]:
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING")
    from tasks.config import load_params

    params = load_params(args.params, args.overrides)  # fail on bad settings before starting Prefect
    if params.tracking.enabled:
        from tasks.tracking import Tracker

        Tracker.check(params)  # and on an unreachable tracking store
    from flows.pipeline import pipeline
    from tasks.common import ProjectLock

    with ProjectLock():
        _start_prefect()
        return pipeline(params_file=args.params, overrides=args.overrides, progress=not args.quiet)


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

    try:
        if args.command == "run":
            _print_summary(_run_flow(args))
        else:
            print(json.dumps(_stage(args), indent=2, default=str))
        return 0
    except (ConfigError, DataError, TrackingError, RunLockedError) as e:
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
