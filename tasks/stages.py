"""The stage table: for each stage, the settings it reads, the files it reads and writes, and the
project source files it runs.  It is the one definition of what a stage depends on:

* every stage's skip decision fingerprints all three (``fingerprint``): the values of its
  settings, the content hashes of its inputs, the content hashes of its code;
* ``dvc.yaml`` is generated from it (``python -m flows dvc-yaml``; a test checks that the
  committed file is that output), so DVC and the stages cannot disagree;
* "is this run done?" (``pipeline_state``) asks each stage's record, verified against its outputs.

The code of a stage is the transitive closure of the project modules its entry module imports
(module level or inside functions), read from the source with ``ast``, by content hash: an
uncommitted edit counts, an edit of a module the stage never imports does not.
``tasks/config.py`` is part of every stage (it defines what the settings mean, defaults
included), but its own imports are not followed: it imports the variant builders only to reject a
bad spec before any work, and a stage that builds networks imports them itself.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from gan_models.files import sha256_file

from .layout import Layout, MissingInputError, read_manifest
from .records import fingerprint, up_to_date
from .runtime import resolve_device, resolved_threads

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gan_models", "tasks", "flows")
SETTINGS_MODULE = "tasks.config"  # in every stage; its imports are not followed (see above)


@dataclass(frozen=True)
class Out:
    path: str
    persist: bool = False  # kept when the stage reruns (checkpoints, so training resumes)
    metric: bool = False  # a DVC metrics file (small JSON, not cached)


@dataclass(frozen=True)
class Stage:
    """One pipeline step.  A per-cell stage runs once for every cell of the run (a variant, or in
    a study a variant and a seed): its setting keys may hold ``{v}``, the variant's name, and its
    paths ``{v}`` too, the cell's name (``<variant>`` or ``<variant>/seed_<s>``)."""

    name: str
    module: str  # the entry module; its import closure is the stage's code
    params: tuple[str, ...]  # dotted keys of params.yaml the stage reads
    deps: tuple[str, ...]  # data the stage reads (outputs of earlier stages)
    outs: tuple[Out, ...]
    record: str  # the JSON record the stage writes last (fingerprint + output hashes)
    per_variant: bool = True
    # Settings left out of the key under which the stage's partial work (checkpoints) is reused:
    # training continues where a shorter run with otherwise equal settings stopped.
    resume_ignores: tuple[str, ...] = ()

    def path(self, template: str, cell: str | None) -> str:
        return template.replace("{v}", cell or "")


# Every stage sets the CPU thread count from train.threads / train.parallel and runs its networks on
# the configured device: results depend on both.
THREADS = ("device", "train.parallel", "train.threads")

STAGES: tuple[Stage, ...] = (
    Stage("prepare", "tasks.prepare", ("seed", "prepare", *THREADS), (),
          (Out("data/prepared"),), "data/prepared/manifest.json", per_variant=False),
    Stage("train", "tasks.train",
          ("seed", "train.steps", "train.batch_size", "train.checkpoint_every", "train.log_every", "train.amp",
           *THREADS, "train.variants.{v}"),
          ("data/prepared",), (Out("models/{v}/train", persist=True),), "models/{v}/train/run.json",
          resume_ignores=("train.steps", "train.variants.{v}:steps")),
    Stage("select", "tasks.select", ("select", *THREADS), ("data/prepared", "models/{v}/train"),
          (Out("models/{v}/selected"),), "models/{v}/selected/selection.json"),
    Stage("evaluate", "tasks.evaluate", ("evaluate", *THREADS), ("data/prepared", "models/{v}/selected"),
          (Out("metrics/{v}.json", metric=True),), "metrics/{v}.json"),
    Stage("export", "tasks.export", ("export", *THREADS), ("data/prepared", "models/{v}/selected"),
          (Out("samples/{v}"),), "samples/{v}/export.json"),
    # A study (``seeds``) only: every cell's metrics and checkpoint scores -> per-variant aggregates
    # (metrics/<variant>.json, what `dvc metrics show` lists), the comparison and its plots.  Its
    # deps and the aggregates are expanded over the run's cells and variants (``study_paths``).
    Stage("study", "tasks.study", ("seeds",), ("metrics/{v}.json", "models/{v}/selected/scores.csv"),
          (Out("reports/study"),), "reports/study/study.json", per_variant=False),
)
# Stages every run has, in order; ``study`` joins them when the settings list seeds.
RUN_STAGES = tuple(s for s in STAGES if s.name != "study")
BY_NAME = {s.name: s for s in STAGES}


def stage(name: str) -> Stage:
    if name not in BY_NAME:
        raise ValueError(f"unknown stage {name!r}; stages: {', '.join(BY_NAME)}")
    return BY_NAME[name]


# -- code: the import closure of a stage's entry module ------------------------------------------
def _module_file(module: str) -> Path | None:
    base = ROOT / Path(*module.split("."))
    for f in (base.with_suffix(".py"), base / "__init__.py"):
        if f.is_file():
            return f
    return None


def _imports(module: str) -> set[str]:
    """Project modules that ``module`` imports anywhere in its source (resolved, existing)."""
    f = _module_file(module)
    package = module if f is not None and f.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(f.read_text(), str(f))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            names = [base] + [f"{base}.{a.name}" for a in node.names]  # `from pkg import module`
        else:
            continue
        for name in names:
            if name.split(".")[0] in PACKAGES and _module_file(name) is not None:
                found.add(name)
    return found


@lru_cache(maxsize=None)
def code_files(module: str) -> tuple[str, ...]:
    """Source files (relative to the project root) that ``module`` runs: its import closure,
    each module's package ``__init__`` included, plus the settings module."""
    seen: set[str] = set()
    todo = [module, SETTINGS_MODULE]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # packages run their __init__
        if m != SETTINGS_MODULE:
            todo += sorted(_imports(m))
    return tuple(sorted(str(_module_file(m).relative_to(ROOT)) for m in seen))


def code_hashes(module: str) -> dict[str, str]:
    return {f: sha256_file(ROOT / f) for f in code_files(module)}


# -- plugins: their source is code of the stages that use what they registered ----------------------
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def names_in(value: Any) -> set[str]:
    """Every identifier-like word in the strings of ``value`` (``augment: "color,my_aug"`` gives
    both policies): the component names a setting may refer to."""
    if isinstance(value, str):
        return set(_NAME.findall(value))
    if isinstance(value, dict):
        return set().union(*(names_in(v) for v in value.values())) if value else set()
    if isinstance(value, (list, tuple)):
        return set().union(*(names_in(v) for v in value)) if value else set()
    return set()


def used_plugins(st: Stage, params: Any, cell: str | None) -> list:
    """The loaded plugins whose components stage ``st`` uses: a name they registered appears in
    the stage's settings, in the variant's resolved spec (every variant stage builds its
    networks), or, for select/evaluate, as the feature extractor they load."""
    from gan_models.registry import plugins_using

    names = names_in(settings(st, params, cell))
    if st.per_variant and cell is not None:
        v = params.cell(cell).variant
        names |= {v} | names_in(params.train.variants.get(v)) | names_in(params.variant_spec(v).to_dict())
    if st.name in ("select", "evaluate"):
        names.add(params.prepare.extractor)
    return plugins_using(names)


def plugin_hashes(st: Stage, params: Any, cell: str | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for plugin in used_plugins(st, params, cell):
        out.update(plugin.code_hashes())
    return out


# -- settings and inputs ----------------------------------------------------------------------------
def _lookup(doc: dict[str, Any], key: str) -> Any:
    node: Any = doc
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


# Settings fingerprinted by what they resolve to on this machine (``runtime``), not as written:
# `threads: null` and `threads: 2` on a 2-core machine give the same results.
RESOLVED = ("train.parallel", "train.threads", "device")


def settings(st: Stage, params: Any, cell: str | None) -> dict[str, Any]:
    """The values of the settings ``st`` reads, by dotted key (defaults included), less those
    fingerprinted by their resolved value.  A cell of a study reads its own seed as ``seed``."""
    doc = params.to_dict()
    c = params.cell(cell) if st.per_variant and cell is not None else None
    if c is not None:
        doc["seed"] = c.seed
    return {k: _lookup(doc, k.replace("{v}", c.variant if c else "")) for k in st.params if k not in RESOLVED}


def command(stage_name: str, params: Any, cell: str | None) -> str:
    """The command that runs a stage (of a cell): ``train --variant mlp [--seed 3]``."""
    if cell is None:
        return stage_name
    from .layout import cell_args

    return f"{stage_name} {cell_args(params.cell(cell).name)}"


def verified_outputs(record_path: Path, produced_by: str) -> dict[str, Any]:
    """An earlier stage's record, after checking every output it lists against its hash."""
    if not record_path.exists():
        raise MissingInputError(f"{record_path} not found: {produced_by} has not run (or did not finish); "
                                f"run: python -m flows {produced_by} first")
    try:
        rec = json.loads(record_path.read_text())
        ok = all(sha256_file(record_path.parent / rel) == h for rel, h in rec.get("outputs", {}).items())
    except (OSError, ValueError):
        ok = False
    if not ok:
        raise MissingInputError(f"the outputs recorded in {record_path} are missing or were changed; "
                                f"rerun: python -m flows {produced_by}")
    return rec


def current_outputs(record_path: Path, produced_by: str) -> dict[str, str | None]:
    """The present content hash of every output an earlier stage's record lists (None: missing).
    Not required to match the record: selection scores a damaged checkpoint as invalid rather
    than refusing to run, and the fingerprint still changes with the damage."""
    if not record_path.exists():
        raise MissingInputError(f"{record_path} not found: {produced_by} has not run (or did not finish); "
                                f"run: python -m flows {produced_by} first")
    try:
        listed = dict(json.loads(record_path.read_text())["outputs"])
    except (ValueError, KeyError, TypeError, AttributeError):
        raise MissingInputError(f"{record_path} is corrupt; rerun: python -m flows {produced_by}") from None
    base = record_path.parent
    return {rel: sha256_file(base / rel) if (base / rel).is_file() else None for rel in listed}


def _tree_hash(root: Path) -> str:
    """Content hash of every file under ``root`` (a user's image folder, torchvision files)."""
    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def _prepared_inputs(layout: Layout, what: str) -> dict[str, Any]:
    """What a later stage takes from data/prepared: ``data`` (the arrays' content hash) or
    ``all`` (every prepared file: classifier weights and real statistics too, and the extractor)."""
    manifest = read_manifest(layout)
    if what == "data":
        return {"data": manifest["content_hash"]}
    return {"data": manifest["content_hash"], "prepared_files": manifest.get("outputs", {}),
            "extractor": manifest.get("extractor")}


def inputs(st: Stage, params: Any, cell: str | None, layout: Layout) -> dict[str, Any]:
    """Content hashes of what ``st`` reads; raises MissingInputError naming the stage to run."""
    v = cell
    if st.name == "prepare":
        cfg = params.prepare
        out: dict[str, Any] = {}
        if cfg.root and Path(cfg.root).is_dir():
            out["root"] = _tree_hash(Path(cfg.root))
        if cfg.inputs and Path(cfg.inputs).is_file():  # a folder's per-image inputs (CSV / .npy)
            out["inputs"] = sha256_file(Path(cfg.inputs))
        if cfg.extractor in ("inception", "auto"):
            from gan_models.features.inception import find_weights

            w = find_weights(cfg.inception_weights)
            # auto picks Inception when the file is there: adding, changing or removing it is new input
            # (absent under auto: nothing recorded, so the offline fingerprints stay what they were)
            if w is not None or cfg.extractor == "inception":
                out["inception_weights"] = sha256_file(w) if w else None
        return out
    if st.name == "train":
        out = _prepared_inputs(layout, "data")
        tricks = params.variant_spec(params.cell(v).variant).tricks
        if tricks.perceptual_weight:
            if tricks.perceptual_net == "classifier":
                out["perceptual"] = _prepared_inputs(layout, "all")["prepared_files"].get("classifier.pt")
            else:
                from gan_models.features.perceptual import weights_path

                w = weights_path("vgg16-397923af.pth")
                out["perceptual"] = sha256_file(w) if w.is_file() else None
        return out
    if st.name == "study":
        found = {}
        for c in params.cells:
            verified_outputs(layout.metrics_file(c.name), command("evaluate", params, c.name))
            scores = layout.selected_dir(c.name) / "scores.csv"
            found[c.name] = {"metrics": sha256_file(layout.metrics_file(c.name)), "scores": sha256_file(scores) if scores.is_file() else None}
        return found
    if st.name == "select":
        files = current_outputs(layout.train_dir(v) / "run.json", command("train", params, v))
        return {**_prepared_inputs(layout, "all"), "checkpoints": files}
    sel = verified_outputs(layout.selected_dir(v) / "selection.json", command("select", params, v))
    picked = {"best_sha256": sel["best_sha256"], "metric": sel["metric"]}
    if st.name == "evaluate":
        out = {**_prepared_inputs(layout, "all"), "selected": picked}
        div = params.evaluate.diversity
        if div.net in ("alex", "vgg"):  # files outside the project: their content, not their path
            from gan_models.features.perceptual import BACKBONES, lpips_linear_file, weights_path

            w, lin = weights_path(BACKBONES[div.net][1], div.weights), lpips_linear_file(div.net)
            out["diversity_weights"] = [sha256_file(f) if f.is_file() else None for f in (w, lin)]
        return out
    return {**_prepared_inputs(layout, "data"), "selected": picked}  # export


def runtime(st: Stage, params: Any, world: int = 1) -> dict[str, Any]:
    """What the results depend on besides settings and files: the CPU threads, the device."""
    cfg = params.train
    out: dict[str, Any] = {"threads": resolved_threads(cfg.threads, cfg.parallel * world),
                           "device": str(resolve_device(params.device))}
    if st.name == "train" and world > 1:
        out["processes"] = world
    return out


@dataclass(frozen=True)
class Fingerprint:
    value: str  # the hash a stage's record must carry for the stage to be skipped
    resume: str  # the key under which partial work is reused (= value unless resume_ignores)
    code: dict[str, str]  # source file -> SHA-256, written into the record for the reader

    @property
    def code_sha256(self) -> str:
        """One hash of the code map, for records read as tables (DVC metrics files)."""
        return hashlib.sha256(json.dumps(self.code, sort_keys=True).encode()).hexdigest()


def stage_fingerprint(name: str, params: Any, variant: str | None, layout: Layout, *,
                      world: int = 1) -> Fingerprint:
    """The fingerprint of stage ``name`` (for ``variant``): settings, input hashes, code hashes and
    runtime."""
    st = stage(name)
    s = settings(st, params, variant)
    code = {**code_hashes(st.module), **plugin_hashes(st, params, variant)}
    ins, rt = inputs(st, params, variant, layout), runtime(st, params, world)
    if not st.resume_ignores:
        value = fingerprint(name, s, ins, code, rt)
        return Fingerprint(value, value, code)
    kept, ignored = dict(s), {}
    for key in st.resume_ignores:
        head, _, sub = key.partition(":")  # "train.variants.{v}:steps": a key inside a value
        if sub:
            ignored[key] = (kept.get(head) or {}).get(sub)
            kept[head] = {k: val for k, val in (kept.get(head) or {}).items() if k != sub}
        else:
            ignored[key] = kept.pop(head, None)
    resume = fingerprint(name, kept, ins, code, rt)
    return Fingerprint(fingerprint(resume, ignored), resume, code)


def record_path(name: str, variant: str | None, layout: Layout) -> Path:
    st = stage(name)
    return layout.root / st.path(st.record, variant)


def stage_done(name: str, params: Any, variant: str | None, layout: Layout) -> bool:
    """True when the stage's record carries its current fingerprint and its outputs verify."""
    try:
        fp = stage_fingerprint(name, params, variant, layout)
    except MissingInputError:
        return False
    return up_to_date(record_path(name, variant, layout), fp.value)


def pipeline_records(params: Any, layout: Layout) -> list[tuple[str, str | None]]:
    """(stage, cell) of every stage of a pipeline run, in order."""
    out: list[tuple[str, str | None]] = [("prepare", None)]
    for c in params.cells:
        out += [(s.name, c.name) for s in RUN_STAGES if s.per_variant]
    if params.seeds is not None:
        out.append(("study", None))
    return out


def study_paths(params: Any) -> tuple[list[str], list[str]]:
    """The study stage's inputs (every cell's metrics file and checkpoint scores) and its
    per-variant aggregates (metrics/<variant>.json)."""
    st = stage("study")
    deps = [st.path(d, c.name) for c in params.cells for d in st.deps]
    return deps, [f"metrics/{v}.json" for v in params.variant_names]


def pipeline_state(params: Any, layout: Layout) -> str | None:
    """A hash of the finished pipeline (every stage's fingerprint and record); None when some stage
    has work to do.  This is the one answer to "is this run done?" on disk; whether it was logged
    is asked of the tracking store itself (tasks.reporting.tracking)."""
    parts = []
    for name, v in pipeline_records(params, layout):
        if not stage_done(name, params, v, layout):
            return None
        parts.append(sha256_file(record_path(name, v, layout)))
    return fingerprint("pipeline", params.to_dict(), parts)


# -- dvc.yaml -----------------------------------------------------------------------------------------
DVC_HEADER = """\
# Generated from the stage table in tasks/stages.py by `python -m flows dvc-yaml`: do not edit.
# Each stage lists the settings it reads, the data it reads and writes, and the project source
# files it runs (the import closure of its module): the same three things the stage itself
# fingerprints to decide whether it is up to date, so DVC and the stages agree.  Variant stages
# are generated from train.variants in params.yaml (train@mlp, train@dcgan, ...).
"""


def _dep_path(path: Path) -> str:
    """A plugin file as a DVC dependency: relative to the project when inside it, else absolute."""
    path = Path(path).resolve()
    try:
        return os.path.relpath(path, Path.cwd()) if path.is_relative_to(Path.cwd().resolve()) else str(path)
    except ValueError:
        return str(path)


def _plugin_deps(st: Stage, params: Any) -> list[str]:
    """Source files of the plugins any variant's ``st`` uses (a foreach stage has one deps list
    for all variants: a stage that does not use the plugin reruns under DVC, finds its own
    fingerprint unchanged and skips the work)."""
    if params is None:
        return []
    found = set()
    for c in ([c.name for c in params.cells] if st.per_variant else [None]):
        for plugin in used_plugins(st, params, c):
            found |= {_dep_path(p) for p in plugin.paths()}
    return sorted(found)


# Columns of curves.csv (the training loop's statistics, ``tasks.records.plot_column`` names) that
# the training-curve plot shows; a variant logs a subset (no D(x) for a critic, ...).
CURVES = ("loss_D", "loss_G", "D_real", "D_fake", "grad_norm_D", "grad_norm_G")


def _plots(params: Any) -> list[str]:
    """DVC plots: per variant its training curves and the held-out selection score over its
    checkpoints (scores.csv's ``score``: FID for images, modes covered for 2D points); one plot of
    every variant's score side by side.  In a study: per variant, every seed's score."""
    if params is None or not params.variant_names:
        return []
    lines = ["plots:"]
    if params.seeds is not None:
        for v in params.variant_names:
            lines += [f"  - {v} held-out selection score, every seed:", "      template: linear", "      x: step",
                      "      y:"]
            lines += [f"        models/{v}/seed_{s}/selected/scores.csv: score" for s in params.seeds]
        return lines
    for v in params.variant_names:
        lines += [f"  - {v} training curves:", "      template: linear", "      x: step", "      y:",
                  f"        models/{v}/train/curves.csv: [{', '.join(CURVES)}]",
                  f"  - {v} checkpoint selection:", "      template: linear", "      x: step", "      y:",
                  f"        models/{v}/selected/scores.csv: [score]"]
    lines += ["  - held-out selection score of every variant over training:", "      template: linear",
              "      x: step", "      y:"]
    lines += [f"        models/{v}/selected/scores.csv: score" for v in params.variant_names]
    return lines


def dvc_yaml(params: Any = None) -> str:
    """The text of dvc.yaml, from the stage table; with ``params``, the plugins' source files are
    deps of the stages that use them and every variant gets its plots.  A study (``seeds``) runs
    the per-cell stages as a ``matrix`` over variants and seeds (``train@mlp-0``, ...) and adds the
    study stage."""
    study = params is not None and params.seeds is not None
    lines = [DVC_HEADER.rstrip("\n"), "stages:"]
    for st in STAGES:
        if st.name == "study" and not study:
            continue
        ind = "      " if st.per_variant and not study else "    "
        lines.append(f"  {st.name}:")
        keys = list(st.params)
        deps, metric_paths = list(st.deps), [o.path for o in st.outs if o.metric]
        if st.per_variant and study:
            names = ", ".join(params.variant_names)
            lines += ["    matrix:", f"      variant: [{names}]", f"      seed: [{', '.join(map(str, params.seeds))}]"]
            path_sub = lambda t: t.replace("{v}", "${item.variant}/seed_${item.seed}")  # noqa: E731
            key_sub = lambda t: t.replace("{v}", "${item.variant}")  # noqa: E731
            keys = ["seeds" if k == "seed" else k for k in keys]  # a cell's seed is one of seeds
            variant_arg = " --variant ${item.variant} --seed ${item.seed}"
        elif st.per_variant:
            lines += ["    foreach: ${train.variants}", "    do:"]
            path_sub = key_sub = lambda t: t.replace("{v}", "${key}")  # noqa: E731
            variant_arg = " --variant ${key}"
        else:
            path_sub = key_sub = lambda t: t  # noqa: E731
            variant_arg = ""
            if st.name == "study":
                deps, metric_paths = study_paths(params)
        lines.append(f"{ind}cmd: python -m flows {st.name}{variant_arg} --quiet")
        lines.append(f"{ind}deps:")
        lines += [f"{ind}  - {path_sub(d)}" for d in deps]
        lines += [f"{ind}  - {f}" for f in code_files(st.module)]
        lines += [f"{ind}  - {f}" for f in _plugin_deps(st, params)]
        lines.append(f"{ind}params:")
        lines += [f"{ind}  - {key_sub(k)}" for k in keys]
        outs = [o for o in st.outs if not o.metric]
        if outs:
            lines.append(f"{ind}outs:")
            for o in outs:
                if o.persist:
                    lines += [f"{ind}  - {path_sub(o.path)}:", f"{ind}      persist: true"]
                else:
                    lines.append(f"{ind}  - {path_sub(o.path)}")
        if metric_paths:
            lines.append(f"{ind}metrics:")
            for m in metric_paths:
                lines += [f"{ind}  - {path_sub(m)}:", f"{ind}      cache: false"]
        lines.append("")
    lines += _plots(params)
    return "\n".join(lines).rstrip("\n") + "\n"
