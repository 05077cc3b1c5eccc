"""Compare the variants of a pipeline run (or of a whole experiment) from MLflow: a table, best
first, as text and Markdown, and a plot of the held-out selection metric over training steps.

Writes ``reports/compare.md`` and ``reports/compare.png`` (atomically).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gan_models.checkpoint import atomic_write_bytes
from gan_models.images import series_png

# (column, metric key, format); a column shows only when some run has the metric.
COLUMNS = [("L1", "l1", ".4f"), ("PSNR", "psnr", ".2f"), ("SSIM", "ssim", ".3f"),  # translation, to ground truth
           ("label kept", "label_preservation", ".1%"), ("cycle L1", "cycle_l1_aba", ".4f"),
           ("FID", "fid", ".4g"), ("modes", "modes_covered", ".3g"), ("HQ %", "high_quality_fraction", ".1%"),
           ("IS", "is_mean", ".3g"), ("KID", "kid_mean", ".4g"), ("precision", "precision", ".3f"),
           ("recall", "recall", ".3f"), ("coverage", "coverage", ".3f"),
           # diversity of the samples over that of real images (mean pairwise distance; < 1: less varied)
           ("diversity (clfpips)", "clfpips_diversity_ratio", ".2f"),
           ("diversity (LPIPS-alex)", "lpips_alex_diversity_ratio", ".2f"),
           ("diversity (LPIPS-vgg)", "lpips_vgg_diversity_ratio", ".2f"), ("classes", "classes_covered", ".0f"),
           ("confident", "confident_fraction", ".1%"),
           ("confident (indep.)", "independent_confident_fraction", ".1%"),  # the independent classifier
           ("label obeyed", "label_agreement", ".1%"),  # conditional variants: classified as the class asked for
           # multi-input variants: Pearson r of a measured attribute against the value asked for
           ("thickness r", "attr_r_thickness", ".2f"), ("slant r", "attr_r_slant", ".2f"),
           ("width r", "attr_r_width", ".2f"), ("height r", "attr_r_height", ".2f"),
           ("HYPE∞ (human)", "human/hype_inf", ".2f"),  # python -m flows human-eval: 0.5 = indistinguishable
           ("samples", "n_samples", ".0f"),
           ("selected step", "selected_step", ".0f")]


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
    if all_runs:
        chosen = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
        label = f"every variant run of experiment {experiment!r}"
    else:
        parent = next((p for p in parents if p.info.run_id == parent_run_id), None) if parent_run_id else parents[0]
        if parent is None:
            raise CompareError(f"run {parent_run_id} is not a pipeline run of experiment {experiment!r}")
        chosen = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        label = f"pipeline run {parent.data.tags.get('mlflow.runName', '')} ({parent.info.run_id})"
    run_names = {p.info.run_id: p.data.tags.get("mlflow.runName", p.info.run_id[:8]) for p in parents}
    rows = []
    for r in chosen:
        m = r.data.metrics
        # A variant's run spans the whole pipeline run; its own time is the training time it logs.
        wall = m.get("train/seconds")
        rows.append({"variant": r.data.tags.get("variant", r.info.run_name),
                     "pipeline": run_names.get(r.data.tags.get("mlflow.parentRunId"), ""),
                     "run_id": r.info.run_id, "status": r.info.status, "metrics": m,
                     "steps": r.data.params.get("steps"), "wall_s": wall, "task": r.data.tags.get("task"),
                     "failure": r.data.tags.get("failure_reason")})
    rows.sort(key=_rank)
    return {"label": label, "rows": rows, "all_runs": all_runs}


def task_of(row: dict[str, Any]) -> str:
    """What a variant does, as compare groups it: generation (from noise) or translation."""
    return "translation" if row.get("task") else "generation"


def _rank(row: dict[str, Any]) -> tuple:
    """Generation variants first, ranked by FID (or modes); translation variants after them,
    ranked among themselves by L1 to the ground truth (else FID): the two never rank against each
    other, as they do not share the metric that selects them."""
    m = row["metrics"]
    finished = row["status"] == "FINISHED"
    group = 1 if row.get("task") else 0
    if group and "l1" in m:
        return (not finished, group, 0, m["l1"])
    if "fid" in m:
        return (not finished, group, 0, m["fid"])
    if "modes_covered" in m:
        return (not finished, group, 0, -m["modes_covered"], -m.get("high_quality_fraction", 0.0))
    return (not finished, group, 1, 0.0)


def table(data: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    rows = data["rows"]
    cols = [c for c in COLUMNS if any(c[1] in r["metrics"] for r in rows)]
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


def text_table(header: list[str], body: list[list[str]]) -> str:
    widths = [max(len(x) for x in col) for col in zip(header, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, body)])


def markdown_table(header: list[str], body: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(out)


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
    md = [f"# Variant comparison\n", f"{data['label']}; best first.\n", markdown_table(header, body), ""]
    failures = [r for r in data["rows"] if r["failure"]]
    md += [f"- **{r['variant']}** failed: {r['failure']}" for r in failures]
    if series:
        md += ["", f"![{key} over training steps](compare.png)", ""]
    md_path = out_dir / "compare.md"
    atomic_write_bytes(md_path, "\n".join(md).encode())
    return {"markdown": md_path, **({"plot": png} if series else {})}
