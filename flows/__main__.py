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
  ui                      the MLflow UI on this project's store (loopback)
  serve    --cron EXPR    serve the pipeline as a Prefect deployment on a schedule
  human-eval --variant V  people judge real vs generated images in a browser -> HYPE∞
  variants                list the registered variants
  datasets                list the data sets
  dvc-yaml                write dvc.yaml from the stage table (tasks/stages.py)

The parser is in flows/cli.py, each command in flows/commands/<command>.py, the exit codes in
flows/errors.py: 0 success, 1 a stage failed while working, 2 bad settings or input (nothing done).
"""

from __future__ import annotations

import importlib
import logging
import sys

from flows.cli import build_parser
from flows.commands import COMMANDS
from flows.errors import outcome


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    for noisy in ("httpx", "httpcore", "alembic", "mlflow.store.db.utils"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command not in ("variants", "datasets", "dvc-yaml"):
        _setup_logging(args.quiet)
    command = importlib.import_module(f"flows.commands.{COMMANDS[args.command]}")
    try:
        return command.main(args)
    except BaseException as e:
        ended = outcome(e)
        if ended is None:
            raise
        code, message = ended
        print(message, file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
