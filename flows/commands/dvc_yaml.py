"""``python -m flows dvc-yaml [--check]``: write (or check) dvc.yaml from the stage table."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def main(args: argparse.Namespace) -> int:
    from gan_models.files import atomic_write_bytes
    from tasks.config import load_params
    from tasks.stages import dvc_yaml

    text = dvc_yaml(load_params(args.params))
    path = Path(args.out)
    if args.check:
        same = path.exists() and path.read_text() == text
        print(f"{path} is up to date with the stage table" if same else
              f"{path} differs from the stage table and {args.params} (its variants, plugins); run: "
              "python -m flows dvc-yaml", file=sys.stderr)
        return 0 if same else 1
    atomic_write_bytes(path, text.encode())
    print(f"written: {path}")
    return 0
