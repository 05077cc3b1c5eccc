"""The study stage (settings with ``seeds``): every variant over its seeds, and which of the
differences between variants are larger than seed noise.

Reads every cell's metrics file (``metrics/<variant>/seed_<s>.json``) and held-out checkpoint
scores (``models/<variant>/seed_<s>/selected/scores.csv``); writes

* ``metrics/<variant>.json``: per metric the mean, standard deviation, median, the 95% interval of
  the mean (``gan_models.stats``: BCa bootstrap, seeded) and n, what ``dvc metrics show`` lists
  and MLflow's variant run gets;
* ``reports/study/``: ``study.json`` (all of it, and the stage's record), ``study.md`` (the table
  best first, the matrix of paired tests with Holm-adjusted p-values and effect sizes, the budget
  every cell had), ``strip.png`` (every seed of every variant per metric), ``expected_best.png``
  (the expected best score after k runs, Lucic et al. 2018) and ``bands.png`` (the held-out score
  over training steps, mean and interval over seeds).
"""

from __future__ import annotations

import csv
import json
import logging
import math
from itertools import combinations
from pathlib import Path
from typing import Any

from gan_models import stats as S
from gan_models.files import atomic_write_bytes, atomic_write_json
from gan_models.images import band_png, series_png, strip_png
from gan_models.metrics import SCORES, better
from gan_models.metrics.base import RECORD_KEYS

from .config import Cell, Params
from .layout import Layout
from .records import up_to_date, write_record
from .stages import stage_fingerprint
from .tables import markdown_table, text_table

log = logging.getLogger(__name__)

RUN_FACTS = ("selected_step", "n")  # numbers an MLflow seed run holds that are not scores
ALPHA = 0.05  # a difference is called significant when its Holm-adjusted p-value is below this


def headline(selection_metric: str, kind: str) -> str:
    """The score the variants are ranked by: the one their checkpoints were selected by."""
    return {"fid": "fid" if kind == "image" else "fid_points", "modes": "modes_covered"}.get(selection_metric,
                                                                                              selection_metric)


def _read_scores(path: Path) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [int(r["step"]) for r in rows], [float(r["score"]) for r in rows]


def study(params: Params, layout: Layout = Layout()) -> dict[str, Any]:
    if params.seeds is None:
        raise ValueError("the study stage needs seeds in the settings (seeds: [0, 1, 2])")
    out = layout.root / "reports" / "study"
    fp = stage_fingerprint("study", params, None, layout)
    if up_to_date(out / "study.json", fp.value):
        log.info("study: up to date")
        return json.loads((out / "study.json").read_text())
    cells = params.cells
    metrics = {c.name: json.loads(layout.metrics_file(c.name).read_text()) for c in cells}
    first = metrics[cells[0].name]
    kind = "image" if first.get("extractor") != "points" else "points"
    key = headline(first["selection_metric"], kind)
    seeds = sorted(params.seeds)  # the order `flows compare` reads seed runs in: the same intervals
    names = {v: [Cell(v, s, study=True).name for s in seeds] for v in params.variant_names}
    by_variant = {v: [metrics[c] for c in names[v]] for v in params.variant_names}
    analysis = analyse(by_variant, key)
    order = analysis["order"]
    bands = {v: S.band([_read_scores(layout.selected_dir(c) / "scores.csv") for c in names[v]]) for v in order}
    budget = {"seeds": seeds, "n": len(seeds),
              "steps": {v: params.variant_steps(v) for v in order},
              "n_samples": sorted({m["n_samples"] for m in metrics.values()}),
              "reference": sorted({m.get("reference", "") for m in metrics.values()}),
              "extractor": sorted({m.get("extractor", "") for m in metrics.values()})}
    record = {"fingerprint": fp.value, "code": fp.code, **analysis, "budget": budget, "bands": bands}
    out.mkdir(parents=True, exist_ok=True)
    files = _write_aggregates(layout, analysis["summaries"], seeds, fp.value)
    files += _plots(out, record, by_variant)
    atomic_write_bytes(out / "study.md", report_markdown(record).encode())
    files.append(out / "study.md")
    write_record(out / "study.json", record, files)
    return json.loads((out / "study.json").read_text())


TEST = ("exact two-sided Wilcoxon signed-rank test, paired by seed; Holm-adjusted over the variant pairs of "
        "each metric; effect size: matched-pairs rank-biserial r")


def analyse(by_variant: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
    """Every variant's metrics over its seeds (``by_variant[v][i]``: the metrics of seed i, the
    same seeds in the same order for every variant) -> per metric each variant's summary, every
    pair's paired test (Holm-adjusted per metric), the order best first by ``key`` and the
    expected best ``key`` after k runs.  The study stage and ``flows compare`` both call this."""
    all_runs = [m for ms in by_variant.values() for m in ms]
    n = len(next(iter(by_variant.values())))
    # the scores every cell has with a finite value: not the facts of a run (step, sample count), nor
    # what MLflow's runs hold besides (training statistics, `train/seconds`, `select/fid`, ...)
    names = [m for m in sorted(set.intersection(*(set(r) for r in all_runs)))
             if m not in RECORD_KEYS and m not in RUN_FACTS and "/" not in m and all(isinstance(r[m], (int, float)) and not isinstance(r[m], bool)
                                             and math.isfinite(r[m]) for r in all_runs)]
    if key not in names:
        raise ValueError(f"the headline score {key!r} is missing or not finite in some cell")
    summaries = {v: {m: S.summary([r[m] for r in ms]).as_dict() for m in names} for v, ms in by_variant.items()}
    tests = {m: _pairwise(by_variant, m) for m in names if better(m) is not None}
    direction = better(key) or "lower"
    order = sorted(by_variant, key=lambda v: (summaries[v][key]["mean"] * (1 if direction == "lower" else -1), v))
    curves = {v: [S.expected_best([r[key] for r in by_variant[v]], k, direction == "lower")
                  for k in range(1, n + 1)] for v in order}
    return {"headline": key, "better": direction, "order": order, "n": n, "ci_method": S.CI_METHOD, "test": TEST,
            "alpha": ALPHA, "summaries": summaries, "tests": tests, "expected_best": curves}


def _pairwise(by_variant: dict[str, list[dict]], name: str) -> list[dict[str, Any]]:
    """Every pair of variants on score ``name``: the paired test and its Holm-adjusted p-value."""
    pairs = list(combinations(by_variant, 2))
    rows = []
    for a, b in pairs:
        t = S.wilcoxon([m[name] for m in by_variant[a]], [m[name] for m in by_variant[b]])
        rows.append({"a": a, "b": b, "n": t.n, "p": t.p_value, "rank_biserial": t.rank_biserial,
                     "mean_difference": t.mean_difference})
    for row, p in zip(rows, S.holm([r["p"] for r in rows]) if rows else []):
        row["p_holm"] = float(p)
        row["significant"] = bool(p < ALPHA)
    return rows


def _write_aggregates(layout: Layout, summaries, seeds, fingerprint: str) -> list[Path]:
    """metrics/<variant>.json: ``<metric>_mean``, ``_std``, ``_median``, ``_ci_low``, ``_ci_high``, n."""
    files = []
    for v, summ in summaries.items():
        flat: dict[str, Any] = {"variant": v, "n": len(seeds), "seeds": seeds, "ci_method": S.CI_METHOD,
                                "fingerprint": fingerprint}
        for n, s in summ.items():
            flat.update({f"{n}_mean": s["mean"], f"{n}_std": s["std"], f"{n}_median": s["median"],
                         f"{n}_ci_low": s["ci_low"], f"{n}_ci_high": s["ci_high"]})
        path = layout.root / "metrics" / f"{v}.json"
        atomic_write_json(path, flat)
        files.append(path)
    return files


def _plots(out: Path, record: dict[str, Any], by_variant) -> list[Path]:
    key, order, summ = record["headline"], record["order"], record["summaries"]
    shown = [key] + [n for n, sc in ((n, SCORES.get(n)) for n in summ[order[0]] if n in SCORES)
                     if sc.summary and n != key][:3]
    panels = {SCORES.get(n).label if n in SCORES else n:
              {v: ([m[n] for m in by_variant[v]], (summ[v][n]["ci_low"], summ[v][n]["ci_high"])) for v in order}
              for n in shown}
    strip_png(out / "strip.png", panels, f"every seed of every variant (n = {record['budget']['n']}); "
              "black: the mean and its 95% interval")
    k = list(range(1, record["budget"]["n"] + 1))
    series_png(out / "expected_best.png", {v: (k, record["expected_best"][v]) for v in order}, "runs (k)",
               f"expected best {key} of k runs", f"expected best {key} after k runs (Lucic et al. 2018)",
               log_y=key.startswith("fid"))
    band_png(out / "bands.png", {v: record["bands"][v] for v in order}, f"held-out {key}",
             f"held-out {key} over training: mean and 95% interval over {record['budget']['n']} seeds",
             log_y=key.startswith("fid"))
    return [out / "strip.png", out / "expected_best.png", out / "bands.png"]


def _fmt(x: float, name: str) -> str:
    fmt = SCORES.get(name).fmt if name in SCORES else ".4g"
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    text = format(x, fmt)
    return text[1:] if text.startswith("-") and float(text.rstrip("%")) == 0 else text  # no "-0"


def tables(record: dict[str, Any]) -> tuple[tuple[list[str], list[list[str]]], tuple[list[str], list[list[str]]]]:
    """The ranking (best first: each score's mean [95% interval], and the headline's standard
    deviation and n) and the pairwise matrix of the headline score (row - column: the mean
    difference, Holm-adjusted p, rank-biserial r; ``*`` marks a significant one)."""
    key, order, summ = record["headline"], record["order"], record["summaries"]
    shown = [key] + [n for n in summ[order[0]] if n in SCORES and SCORES.get(n).summary and n != key]
    label = lambda n: SCORES.get(n).label if n in SCORES else n  # noqa: E731
    header = ["#", "variant", *(f"{label(n)} [95% CI]" for n in shown), f"{label(key)} std", "n"]
    body = [[str(i), v, *(f"{_fmt(summ[v][n]['mean'], n)} [{_fmt(summ[v][n]['ci_low'], n)}, "
                          f"{_fmt(summ[v][n]['ci_high'], n)}]" for n in shown),
             _fmt(summ[v][key]["std"], key), str(summ[v][key]["n"])] for i, v in enumerate(order, 1)]
    tests = {(t["a"], t["b"]): t for t in record["tests"].get(key, [])}
    matrix = []
    for a in order:
        row = [a]
        for c in order:
            t = tests.get((a, c)) or tests.get((c, a))
            if a == c or t is None:
                row.append("")
                continue
            sign = 1 if (t["a"], t["b"]) == (a, c) else -1
            row.append(f"{_fmt(sign * t['mean_difference'], key)}, p={t['p_holm']:.3g}, r={sign * t['rank_biserial']:+.2f}"
                       + (" *" if t["significant"] else ""))
        matrix.append(row)
    return (header, body), (["", *order], matrix)


def _budget_line(record: dict[str, Any]) -> str:
    b = record.get("budget")
    line = (f"Mean [95% interval] over {record['n']} seeds; best first by {record['headline']} "
            f"({record['better']} is better).  Intervals: {record['ci_method']}.  Tests: {record['test']}; "
            f"* significant: Holm-adjusted p < {record['alpha']}.  {_power_line(record)}")
    if b:
        line = (f"{b['n']} seeds per variant ({', '.join(map(str, b['seeds']))}); every cell of a variant trained the "
                f"same steps ({', '.join(f'{v} {s:,}' for v, s in b['steps'].items())}) and was evaluated on "
                f"{', '.join(f'{n:,}' for n in b['n_samples'])} samples against {'; '.join(b['reference'])} "
                f"({', '.join(b['extractor'])} features).  " + line)
    return line


def _power_line(record: dict[str, Any]) -> str:
    """What the design can show at all: the smallest Holm-adjusted p of an exact paired test is
    m x 2 / 2^n (n seeds, m pairs; every seed's difference the same sign, the smallest p of all)."""
    n, k = record["n"], len(record["order"])
    m = k * (k - 1) // 2
    if m == 0:
        return "One variant: no pairwise tests."
    best = min(1.0, m * 2 / 2 ** n)
    need = next(s for s in range(2, 64) if m * 2 / 2 ** s < record["alpha"])
    return (f"With {n} seeds and {m} pair{'s' if m != 1 else ''} the smallest attainable adjusted p is "
            f"{m} x 2/2^{n} = {best:.3g}" + (f": no difference can be significant below {need} seeds." if best >=
                                             record["alpha"] else f" (significance needs >= {need} seeds)."))


def ranking_text(record: dict[str, Any]) -> str:
    """The study for a terminal: the ranking, then which differences are real."""
    (h, b), (mh, mb) = tables(record)
    return "\n".join([text_table(h, b), "", f"Pairwise, {record['headline']} (row - column):", text_table(mh, mb), "",
                      _budget_line(record)])


TITLE = "Study: every variant over its seeds"


def report_body(record: dict[str, Any]) -> str:
    """The study as Markdown without title and plots: the budget, the table best first, the
    significance matrix (what `flows compare` and the flow's Prefect summary include)."""
    (h, b), (mh, mb) = tables(record)
    return "\n".join([_budget_line(record), "", markdown_table(h, b), "",
                      f"## Which differences in {record['headline']} are real", "",
                      "Row vs column: the mean difference (row - column), Holm-adjusted p-value, rank-biserial r; "
                      "`*`: significant.", "", markdown_table(mh, mb), ""])


def report_markdown(record: dict[str, Any]) -> str:
    """reports/study/study.md: the title, the body, the plots."""
    return "\n".join([f"# {TITLE}", "", report_body(record), "![every seed](strip.png)", "",
                      "![expected best after k runs](expected_best.png)", "", "![over training](bands.png)", ""])
