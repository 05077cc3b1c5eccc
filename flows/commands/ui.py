"""``python -m flows ui``: `mlflow server` for this project's store, on loopback unless --host
says otherwise, with the link that opens the experiment in the model-training view."""

from __future__ import annotations

import argparse
import os
import sys


def main(args: argparse.Namespace) -> int:
    from tasks.reporting.tracking import TrackingError, client, experiment_url

    from .settings import settings_and_store

    params, uri = settings_and_store(args)
    base = f"http://{args.host}:{args.port}"
    try:
        exp = client(uri).get_experiment_by_name(params.tracking.experiment)
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
