"""``python -m flows check | prepare | train | select | evaluate | export | study``: one stage (of
one cell: ``--variant``, and ``--seed`` in a study), as the ``dvc.yaml`` commands run it (without
Prefect), printing its summary as JSON."""

from __future__ import annotations

import argparse
import json
from typing import Any, Callable


def run_stage(args: argparse.Namespace) -> dict[str, Any]:
    from tasks.config import Cell, ConfigError, load_params

    params = load_params(args.params, args.overrides)
    if args.command == "check":
        return {"valid": True, "variants": {v: {"steps": params.variant_steps(v), **params.variant_spec(v).to_dict()}
                                             for v in params.variant_names}}
    if args.command == "prepare":
        from tasks.prepare import prepare

        return prepare(params)
    if args.command == "study":
        from tasks.study import study

        return study(params)
    if args.variant not in params.variant_names:
        raise ConfigError(f"--variant {args.variant!r} is not in train.variants; configured: "
                          f"{', '.join(params.variant_names)}")
    if args.seed is None and params.seeds is not None:
        raise ConfigError(f"--seed: the settings list seeds {params.seeds} (a study): name one, e.g. --seed "
                          f"{params.seeds[0]}")
    if args.seed is not None and params.seeds is None:
        raise ConfigError("--seed: the settings list no seeds (not a study): leave out --seed, or set seeds")
    cell = Cell(args.variant, args.seed, study=True).name if args.seed is not None else args.variant
    params.cell(cell)  # an unknown seed: says which there are
    fn: Callable[..., dict[str, Any]]
    if args.command == "train":
        from tasks.train import train

        return train(params, cell, progress=not args.quiet)
    if args.command == "select":
        from tasks.select import select as fn
    elif args.command == "evaluate":
        from tasks.evaluate import evaluate as fn
    else:
        from tasks.export import export as fn
    return fn(params, cell)


def main(args: argparse.Namespace) -> int:
    print(json.dumps(run_stage(args), indent=2, default=str))
    return 0
