"""``python -m flows human-eval --variant V``: people judge real vs generated images in a browser;
the answers are scored as HYPE∞ into metrics/human/<variant>.json and the variant's MLflow run."""

from __future__ import annotations

import argparse
import sys


def report_scores(params, uri: str, variant: str, layout) -> int:
    """Score the stored answers -> metrics/human/<variant>.json, then log them to the variant's
    MLflow run (the one tagged with the study's checkpoint); a missing run or store is reported,
    the file is written anyway."""
    from tasks.reporting import human_eval as H
    from tasks.reporting.tracking import TrackingError, log_to_run, variant_run

    record = H.write_scores(layout, variant)
    path = H.scores_file(layout, variant)
    if not record["n_answers"]:
        print(f"{variant}: no answers yet in {H.study_dir(layout, variant) / H.ANSWERS}")
    else:
        ci = record["hype_inf_ci"]
        fmt = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{variant}: HYPE∞ {record['hype_inf']:.3f} (95% CI {fmt(ci[0] if ci else None)}-"
              f"{fmt(ci[1] if ci else None)}; 0.5 = indistinguishable), generated judged real "
              f"{fmt(record['fake_error'])}, real judged fake {fmt(record['real_error'])}; {record['n_answers']} "
              f"answers from {record['n_evaluators']} evaluator{'s' * (record['n_evaluators'] != 1)} "
              f"({record['n_complete']} complete)")
    print(f"written: {path}")
    sha = record["checkpoint_sha256"]
    if not params.tracking.enabled:
        print("MLflow: not logged (tracking.enabled is false)")
        return 0
    try:
        run = variant_run(uri, params.tracking.experiment, variant, sha)
        if run is None:
            print(f"MLflow: not logged: no run of variant {variant!r} with checkpoint_sha256 {sha[:12]}... in "
                  f"experiment {params.tracking.experiment!r} of {uri} (`python -m flows run` logs one); "
                  f"the scores are in {path} only", file=sys.stderr)
            return 0
        log_to_run(uri, run.info.run_id, H.mlflow_metrics(record), step=record["n_answers"], artifact=path,
                   artifact_path="human")
    except TrackingError as e:
        print(f"MLflow: not logged: {e}", file=sys.stderr)
        return 0
    print(f"MLflow: human/hype_inf and the other human/* metrics logged to run {run.info.run_id} ({variant}) in {uri}")
    return 0


def main(args: argparse.Namespace) -> int:
    """Serve the variant's study until Ctrl-C / SIGTERM, then score it; --score only scores."""
    from tasks.config import ConfigError, load_params
    from tasks.layout import Layout
    from tasks.reporting import human_eval as H
    from tasks.reporting.tracking import tracking_uri

    params = load_params(args.params, args.overrides)
    uri = args.tracking_uri or tracking_uri(params)
    layout = Layout()
    if params.seeds is not None:
        raise ConfigError("human-eval serves one variant's selected checkpoint; a study (settings with seeds) has one "
                          "per seed: run it with settings without seeds (seed: N)")
    if args.variant not in params.variant_names and not (H.study_dir(layout, args.variant) / H.STUDY).exists():
        raise ConfigError(f"--variant {args.variant!r} is not in train.variants; configured: "
                          f"{', '.join(params.variant_names)}")
    if not args.score:
        if not 0 <= args.port <= 65535:
            raise ConfigError(f"--port must be in 0..65535, got {args.port}")
        from tasks.runtime import resolve_device

        H.serve(layout, args.variant, args.n, args.seed, params.seed, args.host, args.port,
                str(resolve_device(params.device)))
        print("stopped; scoring the answers", flush=True)
    return report_scores(params, uri, args.variant, layout)
