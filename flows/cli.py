"""The command table of ``python -m flows``: every command, its options and help."""

from __future__ import annotations

import argparse
import os

EPILOG = """examples:
  python -m flows run                                   # everything, settings from params.yaml
  python -m flows run --set train.steps=500 --set train.variants='{mlp: {}}'
  python -m flows train --variant dcgan --set train.batch_size=128
  python -m flows compare                               # best variant first, reports/compare.md
  python -m flows rerun 3f2c...                         # redo an MLflow run, compare hashes and metrics
  python -m flows serve --cron "0 3 * * *"              # nightly runs through Prefect
  python -m flows human-eval --variant dcgan            # real or fake? in the browser -> HYPE∞
  python -m flows variants
"""


def common_options(p: argparse.ArgumentParser, variant: bool = False, store: bool = False) -> None:
    """The options every command that reads the settings shares; ``store`` adds --tracking-uri."""
    p.add_argument("--params", default="params.yaml", metavar="FILE",
                   help="settings file (default: params.yaml in the current folder)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, YAML syntax for the value (repeatable), e.g. train.steps=500")
    if variant:
        p.add_argument("--variant", required=True, metavar="NAME",
                       help="a variant named in train.variants of the settings file")
    if store:
        p.add_argument("--tracking-uri", default=None,
                       help="MLflow store (default: tracking.uri of the settings, else $MLFLOW_TRACKING_URI, "
                       "else sqlite:///<project>/mlflow.db)")
    p.add_argument("--quiet", action="store_true", help="no progress bars, warnings only")


def dask_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dask-address", default=os.environ.get("GAN_PIPELINE_DASK_ADDRESS"), metavar="ADDR",
                   help="run the variants' stages on this Dask scheduler (tcp://host:8786) through "
                   "prefect-dask; its workers must see this folder (default: $GAN_PIPELINE_DASK_ADDRESS)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m flows", description="GAN experiment pipeline: prepare -> train -> select -> "
        "evaluate -> export, orchestrated by Prefect, versioned by DVC, tracked in MLflow.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("run", help="run the whole pipeline as one Prefect flow, logged to MLflow",
                       description="Prepare the data once, then train, select, evaluate and export every "
                       "variant in train.variants (train.parallel at a time). Logs a parent MLflow run with "
                       "a child run per variant, and records the outputs in dvc.lock when run with "
                       "params.yaml unchanged.  With seeds in the settings (a study): every variant once per seed, "
                       "then the comparison over seeds (reports/study/; MLflow: variant runs with the aggregates, "
                       "a seed run under each).")
    common_options(p)
    dask_option(p)
    p.add_argument("--force-flow", action="store_true",
                   help="run the flow even when nothing changed since the last logged run")
    p = sub.add_parser("prepare", help="stage 1: load, split and version the data set",
                       description="Writes data/prepared/ (arrays, manifest, feature classifier, real statistics).")
    common_options(p)
    for name, text in [("train", "stage 2: train one variant (resumes from its last checkpoint)"),
                       ("select", "stage 3: pick the variant's best checkpoint on held-out data"),
                       ("evaluate", "stage 4: final metrics of the selected checkpoint -> metrics/<variant>.json"),
                       ("export", "stage 5: sample grid, single images, arrays, latent walk -> samples/<variant>/")]:
        p = sub.add_parser(name, help=text, description=text)
        common_options(p, variant=True)
        p.add_argument("--seed", type=int, default=None, metavar="S",
                       help="in a study (settings with seeds): which of the seeds; the cell <variant>/seed_<S>")
    p = sub.add_parser("study", help="a study's comparison: every variant over its seeds -> metrics/, reports/study/",
                       description="With seeds in the settings: aggregate every cell's metrics per variant (mean, "
                       "std, median, 95% interval) into metrics/<variant>.json, test every pair of variants "
                       "(paired by seed, Holm-corrected) and write reports/study/ (table, matrix, plots).")
    common_options(p)
    p = sub.add_parser("check", help="validate the settings and inputs, print the resolved variants; do nothing else",
                       description="Parse and validate the settings file (and overrides) exactly as `run` does, "
                       "print the resolved spec of every variant, and exit: 0 valid, 2 invalid.")
    common_options(p)
    p = sub.add_parser("compare", help="compare the variants of a pipeline run from MLflow -> reports/",
                       description="Print the variants of the newest pipeline run (or --run ID, or --all-runs) "
                       "best first with their metrics, sample counts, steps and training time, and write the same "
                       "table as reports/compare.md with a plot of the held-out metric over training steps "
                       "(reports/compare.png).")
    p.add_argument("--experiment", default=None, help="MLflow experiment (default: tracking.experiment of --params)")
    p.add_argument("--run", default=None, metavar="RUN_ID", help="a pipeline (parent) run id; default: the newest")
    p.add_argument("--all-runs", action="store_true", help="every variant run of the experiment, not one pipeline run")
    p.add_argument("--out", default="reports", metavar="DIR", help="where compare.md/compare.png go (default: reports)")
    common_options(p, store=True)
    p = sub.add_parser("ui", help="serve the MLflow UI for this project's store and print the experiment's link",
                       description="Start `mlflow server` on the store `run` logs to (or --tracking-uri), listening "
                       "on 127.0.0.1 unless --host says otherwise, and print the link that opens the experiment "
                       "in the UI's model-training view (the runs table). Runs until stopped (Ctrl-C).")
    p.add_argument("--port", type=int, default=5000, help="port (default: 5000)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 exposes the store)")
    common_options(p, store=True)
    p = sub.add_parser("human-eval", help="people judge real vs generated images in a browser -> HYPE∞",
                       description="Serve a page that shows a study of the variant's selected checkpoint one image "
                       "at a time (half real held-out images, half generated, shuffled with --seed) and asks "
                       "'real or fake?' (buttons or the R / F keys).  Answers are stored as they arrive in "
                       "human_eval/<variant>/answers.jsonl; a reload resumes the evaluator's session.  Listens "
                       "on 127.0.0.1 unless --host says otherwise.  On Ctrl-C (or SIGTERM), and with --score "
                       "without serving, the answers are scored: HYPE∞ (the evaluators' error rate; 0.5 = "
                       "indistinguishable) with a two-way bootstrap 95% interval -> metrics/human/<variant>.json "
                       "and the variant's MLflow run (human/hype_inf, ...).  The study is reused across restarts "
                       "while the selected checkpoint stays the same.")
    p.add_argument("--n", type=int, default=None,
                   help="images in a new study, half real, half generated (default: 100); an existing study keeps its own")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of a new study: which real images, the generator's noise, the order (default: seed "
                   "of the settings); an existing study keeps its own")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 lets others in "
                   "your network take part)")
    p.add_argument("--score", action="store_true",
                   help="do not serve: score the stored answers -> metrics/human/<variant>.json and MLflow")
    common_options(p, variant=True, store=True)
    p = sub.add_parser("rerun", help="redo a past MLflow run exactly and compare hashes and metrics",
                       description="Rebuild the configuration recorded with an MLflow run (a pipeline run or one "
                       "variant's run): its resolved settings, seed and thread count, with the code at its "
                       "recorded commit. Runs the pipeline afresh in reruns/<run id>/, logs it to the same store "
                       "(tag rerun_of), and compares the data hash, checkpoint hashes and every final metric. "
                       "Exit 0 when identical, 1 when something differs, 2 when it cannot rerun.")
    p.add_argument("run_id", metavar="RUN_ID")
    p.add_argument("--allow-code-change", action="store_true",
                   help="rerun even when the code differs from the recorded commit")
    p.add_argument("--workdir", default=None, help="folder for the rerun (default: reruns/<run id>)")
    common_options(p, store=True)
    p = sub.add_parser("serve", help="serve the pipeline as a Prefect deployment with a cron schedule",
                       description="Create (or update) the deployment gan-pipeline/NAME with a cron schedule and "
                       "the given parameters, and execute its scheduled and manual runs until stopped (Ctrl-C). "
                       "Needs a Prefect server: set PREFECT_API_URL (e.g. `prefect server start`), else a "
                       "temporary one lives as long as this process.")
    p.add_argument("--cron", required=True, help='cron schedule, e.g. "0 3 * * *" (03:00 every day)')
    p.add_argument("--timezone", default="UTC", help="time zone of the schedule (default: UTC)")
    p.add_argument("--name", default="nightly", help="deployment name (default: nightly)")
    common_options(p)
    dask_option(p)
    p = sub.add_parser("variants", help="list the registered variants (presets), components and plugins",
                       description="List the presets usable as keys of train.variants, the components "
                       "(generator/discriminator architectures, losses, augmentations, feature extractors, metrics) "
                       "a variant or stage can use, and the plugins that registered some of them.")
    p.add_argument("--params", default="params.yaml", metavar="FILE", help="whose plugins: to load (default: params.yaml)")
    p = sub.add_parser("datasets", help="list the data sets prepare.dataset accepts",
                       description="List the data sets prepare.dataset accepts (plugins' included).")
    p.add_argument("--params", default="params.yaml", metavar="FILE", help="whose plugins: to load (default: params.yaml)")
    p = sub.add_parser("dvc-yaml", help="write dvc.yaml from the stage table (tasks/stages.py)",
                       description="Write dvc.yaml from the stage table: per stage the settings it reads, the data "
                       "it reads and writes and the source files it runs (the plugins' included), the same things each "
                       "stage fingerprints, and the plots of params.yaml's variants. "
                       "--check exits 1 when the file differs instead of writing it.")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when dvc.yaml is out of date")
    p.add_argument("--out", default="dvc.yaml", metavar="FILE", help="where to write (default: dvc.yaml)")
    p.add_argument("--params", default="params.yaml", metavar="FILE",
                   help="the params file whose variants get plots and whose plugins become deps (default: params.yaml)")
    return parser


