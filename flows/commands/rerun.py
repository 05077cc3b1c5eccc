"""``python -m flows rerun RUN_ID``: redo a past MLflow run exactly and show that it matches.

The run's resolved settings (its ``resolved_params.json``), seed and CPU thread count come from
MLflow; the code must be the recorded commit (refused otherwise, unless allowed).  The pipeline
runs afresh in ``reruns/<run id>/`` (its own data, models and metrics, same MLflow store), and
the data hash, checkpoint hashes and every final metric are compared with the original's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable

import yaml

from tasks.config import ConfigError
from tasks.records import code_version

# Timings differ from run to run by nature; everything else must match.
NOT_COMPARED = ("train/seconds", "train/steps_per_second")
HASH_TAGS = ("data_hash", "train_index_sha256", "checkpoint_sha256")


class RerunRefused(ConfigError):
    """The run cannot be redone exactly here (other code, missing record)."""


def load_record(client, run_id: str) -> dict[str, Any]:
    """The original run (a pipeline run or one variant's run): its settings and variant runs."""
    try:
        run = client.get_run(run_id)
    except Exception as e:
        raise RerunRefused(f"MLflow run {run_id!r} not found in this tracking store ({type(e).__name__}); "
                           "pass --tracking-uri or set MLFLOW_TRACKING_URI to the store that holds it") from None
    if run.data.tags.get("study") == "true" or "cell" in run.data.tags:
        raise RerunRefused(f"run {run_id} belongs to a study (settings with seeds): `flows rerun` redoes single runs; "
                           "redo the study with python -m flows run --params <its settings> --force-flow (finished "
                           "cells are verified, not retrained)")
    parent_id = run.data.tags.get("mlflow.parentRunId", run.info.run_id)
    parent = client.get_run(parent_id) if parent_id != run.info.run_id else run
    children = {r.data.tags["variant"]: r for r in client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")}
    if run.info.run_id != parent_id:
        children = {run.data.tags["variant"]: run}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(parent_id, "resolved_params.json", tmp)
        except Exception:
            raise RerunRefused(f"run {parent_id} has no resolved_params.json artifact: it was not made by "
                               "`python -m flows run`, or its artifacts are gone") from None
        resolved = json.loads(Path(path).read_text())
    return {"parent": parent, "children": children, "params": resolved}


def check_code(recorded: str, allow: bool) -> str | None:
    """None when the code here is the recorded commit; else a warning (allowed) or RerunRefused."""
    now = code_version()
    if recorded == now and not now.endswith("+dirty"):
        return None
    if recorded.endswith("+dirty"):
        why = (f"the run was made with uncommitted changes on top of {recorded.removesuffix('+dirty')}; "
               "that code cannot be restored exactly")
    else:
        why = (f"the run was made with commit {recorded}, the code here is {now}. Check out that commit "
               f"(git stash && git checkout {recorded}, or git worktree add ../rerun {recorded}) and rerun there")
    if allow:
        return f"warning: {why}; rerunning anyway (--allow-code-change): results may differ"
    raise RerunRefused(f"{why}; or pass --allow-code-change to rerun with the code as it is")


def check_plugins(record: dict[str, Any], allow: bool, base: Path) -> str | None:
    """None when every plugin the run loaded is loaded here with the same code; else a warning
    (allowed) or RerunRefused naming the plugin."""
    from tasks.config import ConfigError, import_plugins
    from tasks.reporting.tracking import plugin_records

    recorded = {p["name"]: p for p in json.loads(record["parent"].data.tags.get("plugins") or "[]")}
    try:  # from the project folder, where params.yaml's plugin modules are
        import_plugins(record["params"].get("plugins") or [], base / "params.yaml")
    except ConfigError as e:
        problems = [str(e)]
    else:
        here = {p["name"]: p for p in plugin_records()}
        problems = []
        for name, old in recorded.items():
            new = here.get(name)
            if new is None:
                problems.append(f"plugin {name!r} ({old.get('package') or old['target']}) is not available here")
            elif new["code_sha256"] != old["code_sha256"]:
                problems.append(f"plugin {name!r}'s code differs from the run's (version {old.get('version')} then, "
                                f"{new.get('version')} now): reinstall the version the run used")
        # A plugin installed since cannot change the run: names are unique, so it cannot replace
        # a component the run used.
    if not problems:
        return None
    why = "; ".join(problems)
    if allow:
        return f"warning: {why}; rerunning anyway (--allow-code-change): results may differ"
    raise RerunRefused(f"{why}; or pass --allow-code-change to rerun with the code as it is")


def rerun_params(record: dict[str, Any], uri: str, base: Path) -> dict[str, Any]:
    """The original settings, pinned to what made it exact: its variants, its thread count, its
    data folder (made absolute), its tracking store; no model registration."""
    p = json.loads(json.dumps(record["params"]))
    tags = record["parent"].data.tags
    p["train"]["variants"] = {v: spec for v, spec in p["train"]["variants"].items() if v in record["children"]}
    p["train"]["threads"] = int(tags.get("threads") or 0) or p["train"].get("threads")
    root = p["prepare"].get("root")
    if root and not Path(root).is_absolute():
        p["prepare"]["root"] = str((base / root).resolve())
    p["tracking"] = {**p["tracking"], "uri": uri, "registered_model": None}
    return p


def compare_runs(client, original: dict[str, Any], new_children: dict[str, str]) -> list[dict[str, Any]]:
    """One row per compared value: variant, what, original, rerun, same."""
    rows = []
    for v, old in original["children"].items():
        new = client.get_run(new_children[v]) if v in new_children else None
        for tag in HASH_TAGS:
            a = old.data.tags.get(tag)
            if a is None:
                continue
            b = new.data.tags.get(tag) if new else None
            rows.append({"variant": v, "what": tag, "original": a, "rerun": b, "same": a == b})
        for key, a in sorted(old.data.metrics.items()):
            if key in NOT_COMPARED or key.startswith("system/"):  # timings, CPU and memory use
                continue
            b = new.data.metrics.get(key) if new else None
            rows.append({"variant": v, "what": key, "original": a, "rerun": b, "same": a == b})
    return rows


def rerun(run_id: str, uri: str, *, allow_code_change: bool, workdir: Path | None,
          run_pipeline: Callable[[str, list[str], bool], dict[str, Any]], progress: bool) -> tuple[bool, str]:
    """Redo ``run_id``; returns (identical, report)."""
    from tasks.reporting.tracking import client as mlflow_client

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    client = mlflow_client(uri)
    record = load_record(client, run_id)
    tags = record["parent"].data.tags
    warning = check_code(tags.get("code_version", "unknown"), allow_code_change)
    base = Path.cwd()
    plugin_warning = check_plugins(record, allow_code_change, base)
    warning = "\n".join(w for w in (warning, plugin_warning) if w) or None
    workdir = workdir or base / "reruns" / run_id
    if workdir.exists():
        shutil.rmtree(workdir)  # a fresh folder: stages would otherwise skip their finished work
    workdir.mkdir(parents=True)
    (workdir / "params.yaml").write_text(yaml.safe_dump(rerun_params(record, uri, base), sort_keys=False))
    with contextlib.chdir(workdir):
        result = run_pipeline("params.yaml", [], progress)
    new_children = result["tracking"]["child_run_ids"]
    client.set_tag(result["tracking"]["parent_run_id"], "rerun_of", record["parent"].info.run_id)
    rows = compare_runs(client, record, new_children)
    same = all(r["same"] for r in rows)
    lines = [warning] if warning else []
    lines.append(f"rerun of {record['parent'].info.run_id} in {workdir} "
                 f"(new MLflow run {result['tracking']['parent_run_id']}):")
    width = max((len(f"{r['variant']} {r['what']}") for r in rows), default=10)
    for r in rows:
        mark = "same" if r["same"] else "DIFFERS"
        lines.append(f"  {r['variant'] + ' ' + r['what']:<{width}}  {mark:<7}  {_fmt(r['original'])}"
                     + ("" if r["same"] else f"  ->  {_fmt(r['rerun'])}"))
    n_diff = sum(not r["same"] for r in rows)
    lines.append(f"identical: {len(rows)} values (data hash, checkpoint hashes, metrics) match the original"
                 if same else f"NOT identical: {n_diff} of {len(rows)} values differ")
    return same, "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    return str(v)[:20] if v is not None else "(missing)"


__all__ = ["rerun", "RerunRefused"]


def main(args) -> int:
    from .run import run_pipeline
    from .settings import settings_and_store

    same, report = rerun(args.run_id, settings_and_store(args)[1], allow_code_change=args.allow_code_change,
                         workdir=Path(args.workdir).resolve() if args.workdir else None,
                         run_pipeline=run_pipeline, progress=not args.quiet)
    print(report)
    return 0 if same else 1
