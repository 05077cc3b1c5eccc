"""``python -m flows serve --cron EXPR``: the pipeline as a Prefect deployment on a schedule."""

from __future__ import annotations

import argparse
import sys


def main(args: argparse.Namespace) -> int:
    from flows.prefect_server import quiet_prefect, start_prefect

    quiet_prefect()
    from tasks.config import load_params

    load_params(args.params, args.overrides)  # refuse bad settings now, not at 3 a.m.
    from prefect.schedules import Cron

    from flows.pipeline import pipeline

    start_prefect()
    print(f"serving gan-pipeline/{args.name} on cron {args.cron!r} ({args.timezone}); Ctrl-C stops "
          "(the schedule stays active on the server)", file=sys.stderr)
    pipeline.serve(name=args.name, schedule=Cron(args.cron, timezone=args.timezone),
                   parameters={"params_file": args.params, "overrides": args.overrides, "progress": False,
                               "dask_address": args.dask_address},
                   pause_on_shutdown=False, print_starting_message=False)
    return 0
