"""Compare the variants of a pipeline run (or of a whole experiment) from MLflow: a table, best
first, as text and Markdown, and a plot of the held-out selection metric over training steps.

Writes ``reports/compare.md`` and ``reports/compare.png`` (atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gan_models.files import atomic_write_bytes
from gan_models.images import series_png
from gan_models.metrics import better, table_scores

from ..tables import markdown_table

# Columns after the scores (whose labels, directions and formats the metric registry declares):
# facts of the run, not qualities.  A column shows only when some run has the value.
RUN_COLUMNS = [("samples", "n_samples", ".0f"), ("selected step", "selected_step", ".0f")]


def columns(rows: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(header, metric key, format) of every column some row has a value for, in table order."""
    cols = [(s.label, name, s.fmt) for name, s in table_scores()] + RUN_COLUMNS
    return [c for c in cols if any(c[1] in r["metrics"] for r in rows)]


class CompareError(RuntimeError):
    """Nothing to compare (no such experiment, no runs)."""


def collect(client, experiment: str, parent_run_id: str | None = None, all_runs: bool = False) -> dict[str, Any]:
    """The variant runs to compare: those of ``parent_run_id``, else of the newest pipeline run, or
    (``all_runs``) every variant run of the experiment."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = [e.name for e in client.search_experiments()]
        raise CompareError(f"no MLflow experiment named {experiment!r} in this store; known: "
                           f"{', '.join(names) or 'none'} (pick one with --experiment)")
    runs = client.search_runs([exp.experiment_id], max_results=5000, order_by=["attributes.start_time DESC"])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        raise CompareError(f"experiment {experiment!r} holds no pipeline runs yet; run: python -m flows run")
    study = None
    if all_runs:  # every run that trained (a study's variant runs hold only aggregates of theirs)
        chosen = [r for r in runs if "mlflow.parentRunId" in r.data.tags and r.data.tags.get("study") != "true"]
        label = f"every variant run of experiment {experiment!r}"
    else:
        parent = next((p for p in parents if p.info.run_id == parent_run_id), None) if parent_run_id else parents[0]
        if parent is None:
            raise CompareError(f"run {parent_run_id} is not a pipeline run of experiment {experiment!r}")
        chosen = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        label = f"pipeline run {parent.data.tags.get('mlflow.runName', '')} ({parent.info.run_id})"
        if parent.data.tags.get("study") == "true":
            study = _study(runs, chosen, parent)
            chosen = [r for v in chosen for r in runs if r.data.tags.get("mlflow.parentRunId") == v.info.run_id]
    run_names = {p.info.run_id: p.data.tags.get("mlflow.runName", p.info.run_id[:8]) for p in parents}
    parent_of = {r.info.run_id: r.data.tags.get("mlflow.parentRunId") for r in runs}
    rows = []
    for r in chosen:
        m = r.data.metrics
        pid = r.data.tags.get("mlflow.parentRunId")
        # A variant's run spans the whole pipeline run; its own time is the training time it logs.
        wall = m.get("train/seconds")
        rows.append({"variant": r.info.run_name if study is not None or "cell" in r.data.tags
                     else r.data.tags.get("variant", r.info.run_name),
                     "pipeline": run_names.get(pid, run_names.get(parent_of.get(pid), "")),  # a seed run: 2 up
                     "run_id": r.info.run_id, "status": r.info.status, "metrics": m,
                     "steps": r.data.params.get("steps"), "wall_s": wall, "task": r.data.tags.get("task"),
                     "failure": r.data.tags.get("failure_reason")})
    rows.sort(key=_rank)
    return {"label": label, "rows": rows, "all_runs": all_runs, "study": study}


def _study(runs, variant_runs, parent) -> dict[str, Any] | None:
    """A study's comparison from its seed runs in MLflow (``tasks.study.analyse``: the same
    statistics as the study stage's), or None when some seed run did not finish."""
    from ..study import analyse

    by_variant: dict[str, list[dict[str, float]]] = {}
    for v in variant_runs:
        seeds = sorted((int(r.data.tags.get("seed", 0)), r) for r in runs
                       if r.data.tags.get("mlflow.parentRunId") == v.info.run_id)
        if not seeds or any(r.info.status != "FINISHED" for _, r in seeds):
            return None
        by_variant[v.data.tags.get("variant", v.info.run_name)] = [dict(r.data.metrics) for _, r in seeds]
    if len({len(x) for x in by_variant.values()}) != 1:
        return None
    if "study_headline" not in parent.data.tags:  # the study stage did not finish
        return None
    try:
        return analyse(by_variant, parent.data.tags["study_headline"])
    except ValueError:  # a seed run lacks the headline score
        return None


def task_of(row: dict[str, Any]) -> str:
    """What a variant does, as compare groups it: generation (from noise) or translation."""
    return "translation" if row.get("task") else "generation"


# What ranks a run, first key first: translation by L1 to the ground truth (else FID), generation by
# FID (else modes covered, then the share of high-quality samples); each in its registered direction.
RANK_KEYS = {"translation": (("l1",), ("fid",)),
             "generation": (("fid",), ("modes_covered", "high_quality_fraction"))}


def _rank(row: dict[str, Any]) -> tuple:
    """Generation variants first, translation variants after them, each ranked by its own
    headline score: the two never rank against each other, as they do not share the metric that
    selects them."""
    m = row["metrics"]
    finished = row["status"] == "FINISHED"
    group = task_of(row)
    for keys in RANK_KEYS[group]:
        if keys[0] in m:
            return (not finished, group == "translation", 0,
                    *(m.get(k, 0.0) if better(k) == "lower" else -m.get(k, 0.0) for k in keys))
    return (not finished, group == "translation", 1, 0.0)


def table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = data["rows"]
    cols = columns(rows)
    mixed = len({task_of(r) for r in rows}) > 1  # ranks restart per task: they do not compare
    header = ["#", "variant", *(["task"] if mixed else []), *(["pipeline run"] if data["all_runs"] else []),
              "status", *[c[0] for c in cols], "steps", "train time"]
    body = []
    rank: dict[str, int] = {}
    for r in rows:
        rank[task_of(r)] = i = rank.get(task_of(r), 0) + 1
        cells = [str(i), r["variant"], *([task_of(r)] if mixed else []), *([r["pipeline"]] if data["all_runs"] else []),
                 r["status"]]
        for _, key, fmt in cols:
            v = r["metrics"].get(key)
            cells.append(format(v, fmt) if v is not None else "-")
        cells.append(str(r["steps"] or "-"))
        cells.append(f"{r['wall_s']:.0f} s" if r["wall_s"] is not None else "-")
        body.append(cells)
    return header, body


def write_report(client, data: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """reports/compare.md and reports/compare.png (selection metric over training steps)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    header, body = table(data)
    key = "select/fid" if any("fid" in r["metrics"] for r in data["rows"]) else "select/modes_covered"
    series = {}
    for r in data["rows"]:
        hist = sorted(client.get_metric_history(r["run_id"], key), key=lambda m: m.step)
        if hist:
            name = f"{r['variant']} ({r['pipeline']})" if data["all_runs"] else r["variant"]
            series[name] = ([m.step for m in hist], [m.value for m in hist])
    png = out_dir / "compare.png"
    if series:
        series_png(png, series, "training step", f"{key.split('/')[1]} (held-out)",
                   f"{key.split('/')[1]} of each checkpoint, by variant", log_y=key == "select/fid")
    md = ["# Variant comparison\n", f"{data['label']}; best first.\n"]
    if data.get("study"):
        from ..study import report_body

        md += [report_body(data["study"]), "", "## Every seed run", ""]
    md += [markdown_table(header, body), ""]
    failures = [r for r in data["rows"] if r["failure"]]
    md += [f"- **{r['variant']}** failed: {r['failure']}" for r in failures]
    if series:
        md += ["", f"![{key} over training steps](compare.png)", ""]
    md_path = out_dir / "compare.md"
    atomic_write_bytes(md_path, "\n".join(md).encode())
    return {"markdown": md_path, **({"plot": png} if series else {})}
