"""Image-to-image translation on the embedded digit tasks, through the real pipeline.

Two runs of ``python -m flows run``, each in its own scratch project (its own data/, models/,
MLflow store), one after the other:

  edges2digits  pix2pix   paired: the edge map (3x3 morphological gradient) of a digit -> the digit
  thin2thick    cyclegan  unpaired: eroded (thin) digits -> dilated (thick) digits, A and B trained
                          on disjoint halves of the training split

Each is scored by the evaluate stage on every held-out input against its ground truth (L1, PSNR,
SSIM on [0, 1]), with FID and label preservation on the data set's classifier (trained on the
target domain), beside the two baselines prepare computes the same way: the input itself and a
Gaussian-blurred input (sigma 1 px).  Wall-clock time of the train stage is what the issue
bounds (10 minutes on 2 cores); the whole run's time is printed too.

    python benchmarks/translation.py                  # the reported budget
    python benchmarks/translation.py --quick          # a smoke run (few steps)
    python benchmarks/translation.py --sweep 1,4,16   # CycleGAN's batch size against training time
    python benchmarks/translation.py --ceiling        # how much of the digit each domain keeps

Writes reports/benchmarks/translation.md, translation.json and the held-out grids
translation_<task>.png (rows: input | output | ground truth), translation_<task>_ba.png (CycleGAN's
B -> A); translation_sweep.md/json; translation_ceiling.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "reports" / "benchmarks"

# CycleGAN trains with small batches (the paper: 1).  On thin2thick, held-out label preservation
# / L1 / SSIM after 4 minutes of training (`--sweep 1,4,16`, BENCHMARKS.md): batch 1 0.900 /
# 0.043 / 0.831, batch 4 0.924 / 0.032 / 0.896, batch 16 0.912 / 0.057 / 0.729.  pix2pix does
# well with 16.
TASKS = {
    "edges2digits": {"variant": "pix2pix", "steps": 3000, "batch_size": 16, "quick_steps": 40},
    "thin2thick": {"variant": "cyclegan", "steps": 2400, "batch_size": 4, "quick_steps": 20},
}
METRICS = [("L1", "l1", ".4f"), ("PSNR (dB)", "psnr", ".2f"), ("SSIM", "ssim", ".3f"),
           ("label kept", "label_preservation", ".1%"), ("FID", "fid", ".1f")]


def params_for(dataset: str, variant: str, steps: int, batch_size: int, quick: bool) -> dict:
    return {
        "seed": 0,
        "prepare": {"dataset": dataset, **({"max_samples": 600, "classifier_samples": 1000} if quick else {})},
        "train": {"steps": steps, "batch_size": batch_size, "checkpoint_every": max(1, steps // 6), "log_every": 20,
                  "variants": {variant: {}}},
        "select": {"n_samples": 500},
        "tracking": {"experiment": f"translation-{dataset}", "registered_model": None},
    }


def run_task(dataset: str, cfg: dict, quick: bool, workdir: Path) -> dict:
    variant = cfg["variant"]
    steps = cfg["quick_steps"] if quick else cfg["steps"]
    proj = workdir / dataset
    shutil.rmtree(proj, ignore_errors=True)
    proj.mkdir(parents=True)
    (proj / "params.yaml").write_text(yaml.safe_dump(params_for(dataset, variant, steps, cfg['batch_size'], quick), sort_keys=False))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": f"sqlite:///{proj / 'mlflow.db'}",
           "PREFECT_HOME": str(proj / ".prefect")}
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flows", "run", "--quiet"], cwd=proj, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{dataset}: flows run failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    metrics = json.loads((proj / "metrics" / f"{variant}.json").read_text())
    run = json.loads((proj / "models" / variant / "train" / "run.json").read_text())
    history = [json.loads(line) for line in (proj / "models" / variant / "train" / "history.jsonl").read_text().splitlines()]
    manifest = json.loads((proj / "data" / "prepared" / "manifest.json").read_text())
    train_s = _train_seconds(proj, variant)
    for suffix in ("", "_ba") if not quick else ():  # a smoke run leaves the reported grids alone
        src = proj / "samples" / variant / f"translation{suffix}.png"
        if src.exists():
            shutil.copy(src, OUT / f"translation_{dataset}{suffix}.png")
    return {"dataset": dataset, "variant": variant, "steps": steps, "batch_size": cfg["batch_size"], "wall_s": round(wall, 1),
            "train_s": train_s, "selected_step": metrics["step"], "metrics": metrics,
            "baselines": manifest["translation"].get("baselines", {}), "final_train_stats": run["final"],
            "classifier_heldout_accuracy": manifest["extractor"].get("heldout_accuracy"),
            "n_history": len(history)}


def _train_seconds(proj: Path, variant: str) -> float | None:
    """The train stage's own time, from the MLflow run it logged (train/seconds)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{proj / 'mlflow.db'}")
    for exp in client.search_experiments():
        for r in client.search_runs([exp.experiment_id]):
            if r.data.tags.get("variant") == variant and "train/seconds" in r.data.metrics:
                return round(r.data.metrics["train/seconds"], 1)
    return None


def markdown(results: list[dict], command: str) -> str:
    lines = ["# Image-to-image translation on the embedded digit tasks", "",
             f"`{command}`: one `python -m flows run` per task, on this machine, one after the other "
             "(each task's section names the command that produced it). "
             "Held-out inputs against their ground truth; L1 / PSNR / SSIM on the [0, 1] scale; label kept and "
             "FID on the data set's classifier (trained on the target domain).", ""]
    for r in results:
        m, b = r["metrics"], r["baselines"]
        lines += [f"## {r['dataset']}: {r['variant']}", "", *([f"`{r['command']}`", ""] if "command" in r else []),
                  f"{r['steps']} steps, batch {r.get('batch_size', 16)}; train stage {r['train_s']} s, whole run {r['wall_s']} s; selected "
                  f"step {r['selected_step']} (by held-out L1); {m['n_samples']} held-out inputs; classifier "
                  f"held-out accuracy {r['classifier_heldout_accuracy']:.1%}.", "",
                  "| | " + " | ".join(c[0] for c in METRICS) + " |", "|---|" + "---|" * len(METRICS)]
        rows = [(f"**{r['variant']}**", m)] + [(f"baseline: {k}" + (" (blur sigma 1 px)" if k == "blur" else ""), v)
                                                for k, v in b.items()]
        for name, vals in rows:
            lines.append(f"| {name} | " + " | ".join(format(vals[k], f) if k in vals else "-" for _, k, f in METRICS)
                         + " |")
        if "cycle_l1_aba" in m:
            lines += ["", f"Other direction (B -> A): L1 {m['l1_ba']:.4f}, PSNR {m['psnr_ba']:.2f}, SSIM "
                      f"{m['ssim_ba']:.3f}; cycle L1 A->B->A {m['cycle_l1_aba']:.4f}, B->A->B {m['cycle_l1_bab']:.4f}."]
        lines += ["", f"![{r['dataset']} held-out: input | output | truth](translation_{r['dataset']}.png)", ""]
    return "\n".join(lines)


def sweep(batches: list[int], minutes: float, every: float, workdir: Path) -> str:
    """CycleGAN on thin2thick at several batch sizes, each for ``minutes`` of training time (the
    loop's own time, scoring excluded), its held-out label preservation, L1 and SSIM every
    ``every`` seconds: how the batch size trades steps for quality on 2 cores.  Uses the prepared
    data of the workdir's thin2thick project (prepared first when missing); lr_decay is off, so the
    curves show the constant-rate phase."""
    import numpy as np
    import torch

    proj = workdir / "thin2thick"
    if not (proj / "data" / "prepared" / "manifest.json").exists():
        proj.mkdir(parents=True, exist_ok=True)
        (proj / "params.yaml").write_text(yaml.safe_dump(params_for("thin2thick", "cyclegan", 1, 4, False)))
        subprocess.run([sys.executable, "-m", "flows", "prepare", "--quiet"], cwd=proj, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    sys.path.insert(0, str(ROOT))
    from gan_models import metrics as M
    from gan_models import variants as V
    from gan_models.data import to_model_range
    from gan_models.features import EXTRACTORS
    from gan_models.training import Trainer, generate
    from tasks.layout import Layout, load_prepared

    layout = Layout(proj)
    torch.set_num_threads(os.cpu_count() or 1)
    prep = load_prepared(layout)
    classifier = EXTRACTORS.get("classifier")(layout.prepared)
    source, truth = to_model_range(torch.from_numpy(prep.held_a)), prep.held_x / 255.0
    rows = []
    for bs in batches:
        torch.manual_seed(0)
        gan = V.build(V.resolve("cyclegan", {"lr_decay": 0.0}), prep.info)
        trainer = Trainer(gan, torch.from_numpy(prep.train_x), batch_size=bs, seed=0,
                          source=torch.from_numpy(prep.train_a))
        spent, due = 0.0, every
        while spent < minutes * 60:
            t = time.perf_counter()
            trainer.train_step()
            spent += time.perf_counter() - t
            if spent >= due:
                due += every
                out = generate(gan.G, source)
                _, logits = classifier(out)
                unit = ((out.double() + 1) / 2).numpy()
                rows.append({"batch_size": bs, "train_s": round(spent), "step": trainer.step,
                             "label_preservation": M.label_preservation(logits, prep.held_ya),
                             "l1": float(np.abs(unit - truth).mean()), "ssim": M.ssim(unit, truth)})
                print(rows[-1], flush=True)
    (OUT / "translation_sweep.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = [f"CycleGAN on thin2thick, batch sizes {', '.join(map(str, batches))}, {minutes:g} min of training each, "
             f"held-out label preservation / L1 / SSIM every {every:g} s of training:", "",
             "| training time | " + " | ".join(f"batch {b}" for b in batches) + " |", "|---|" + "---|" * len(batches)]
    for t in sorted({r["train_s"] // every * every for r in rows}):
        cells = []
        for b in batches:
            r = next((r for r in rows if r["batch_size"] == b and r["train_s"] // every * every == t), None)
            cells.append(f"{r['label_preservation']:.3f} / {r['l1']:.4f} / {r['ssim']:.3f} (step {r['step']})"
                         if r else "-")
        lines.append(f"| {t:.0f} s | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ceiling(epochs: int = 4) -> str:
    """How much of the digit each domain keeps: the data set's classifier architecture (SmallCNN,
    seed 0) trained on one version of the embedded digits and tested on the held-out 10% of the
    same version.  A translation's label preservation cannot exceed what its input domain keeps;
    this is what chose thin2thick's thinning (a 3x3-cross erosion kept too little)."""
    import numpy as np
    import torch
    from scipy import ndimage

    sys.path.insert(0, str(ROOT))
    from gan_models.data import embedded as D_embedded
    from gan_models.data import translation as D_translation
    from gan_models.features.classifier import features_and_logits, train_classifier

    torch.set_num_threads(os.cpu_count() or 1)
    raw = D_embedded.load_mnist_subset()
    perm = np.random.default_rng(0).permutation(len(raw.x))
    train, held = perm[:4500], perm[4500:]
    cross = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], bool)[None, None]
    versions = {"original digits": raw.x, "thin2thick A: 2x2-square erosion (thin)": D_translation.thin(raw.x),
                "rejected A: 3x3-cross erosion": ndimage.grey_erosion(raw.x, footprint=cross),
                "thin2thick B: 3x3-square dilation (thick)": D_translation.thicken(raw.x),
                "edges2digits A: morphological gradient": D_translation.edge_map(raw.x)}
    lines = [f"SmallCNN trained {epochs} epochs on 4,500 images of each version, accuracy on the other 500:", "",
             "| version | held-out accuracy | share of pixels > 127 |", "|---|---|---|"]
    for name, x in versions.items():
        model = train_classifier(x[train], raw.y[train], 10, samples=epochs * len(train))
        _, logits = features_and_logits(model, x[held])
        lines.append(f"| {name} | {(logits.argmax(1) == raw.y[held]).mean():.1%} | {(x > 127).mean():.3f} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="few steps on 600 samples: a smoke run")
    ap.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of: " + ", ".join(TASKS))
    ap.add_argument("--workdir", default=str(ROOT / ".benchmarks" / "translation"),
                    help="scratch projects, one per task (replaced)")
    ap.add_argument("--sweep", default="", help="instead: CycleGAN's batch-size sweep on thin2thick, e.g. 1,4,16")
    ap.add_argument("--minutes", type=float, default=4.0, help="--sweep: training minutes per batch size")
    ap.add_argument("--ceiling", action="store_true", help="instead: how much of the digit each domain keeps")
    args = ap.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.ceiling:
        md = ceiling()
        print(md)
        (OUT / "translation_ceiling.md").write_text(f"`python benchmarks/translation.py --ceiling`\n\n{md}\n")
        return 0
    if args.sweep:
        md = sweep([int(b) for b in args.sweep.split(",")], args.minutes, 60.0, Path(args.workdir))
        print(md)
        (OUT / "translation_sweep.md").write_text(f"`python benchmarks/translation.py --sweep {args.sweep} --minutes "
                                                  f"{args.minutes:g}`\n\n{md}\n")
        return 0
    tasks = args.tasks.split(",")
    unknown = set(tasks) - set(TASKS)
    if unknown:
        ap.error(f"unknown task(s) {', '.join(sorted(unknown))}; known: {', '.join(TASKS)}")
    results = [run_task(t, TASKS[t], args.quick, Path(args.workdir)) for t in tasks]
    command = "python benchmarks/translation.py" + (" --quick" if args.quick else "")
    if not args.quick:  # a run of some tasks replaces their rows and keeps the others'
        saved = OUT / "translation.json"
        kept = [r for r in (json.loads(saved.read_text()) if saved.exists() else []) if r["dataset"] not in tasks]
        results = sorted(kept + [{**r, "command": command + (f" --tasks {args.tasks}" if args.tasks != ",".join(TASKS)
                                                             else "")} for r in results],
                         key=lambda r: list(TASKS).index(r["dataset"]))
        saved.write_text(json.dumps(results, indent=1, default=str) + "\n")
    md = markdown(results, command)
    print(md)
    if not args.quick:
        (OUT / "translation.md").write_text(md + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
