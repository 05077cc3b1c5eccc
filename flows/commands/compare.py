"""``python -m flows compare``: the variants of a pipeline run (or of a whole experiment) best
first, from MLflow, printed and written to reports/."""

from __future__ import annotations

import argparse
from pathlib import Path


def main(args: argparse.Namespace) -> int:
    from tasks.reporting import compare as C
    from tasks.tables import text_table
    from tasks.reporting.tracking import client

    from .settings import settings_and_store

    params, uri = settings_and_store(args)
    store = client(uri)
    data = C.collect(store, args.experiment or params.tracking.experiment, args.run, args.all_runs)
    header, body = C.table(data)
    print(f"{data['label']} (MLflow store {uri}); best first:\n")
    if data.get("study"):
        from tasks.study import ranking_text

        print(ranking_text(data["study"]) + "\n\nEvery seed run:\n")
    print(text_table(header, body))
    files = C.write_report(store, data, Path(args.out))
    print("\nwritten: " + ", ".join(str(p) for p in files.values()))
    return 0
