"""What several commands read before their own work: the settings, the MLflow store, the plugins."""

from __future__ import annotations

import argparse
import os
from pathlib import Path


def plugins_of(params_file: str) -> None:
    """Load the plugins ``params_file`` names (when it exists) and the installed entry-point ones."""
    import yaml

    from tasks.config import ConfigError, import_plugins

    path = Path(params_file)
    try:
        doc = yaml.safe_load(path.read_text()) if path.is_file() else {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from None
    import_plugins((doc or {}).get("plugins") if isinstance(doc, dict) else None, path)


def settings_and_store(args: argparse.Namespace):
    """The settings (the file with --set applied; defaults when there is no file) and the MLflow
    store to read: --tracking-uri, else what `run` would use."""
    from tasks.config import Params, apply_overrides, load_params
    from tasks.reporting.tracking import tracking_uri

    if os.path.exists(args.params):
        params = load_params(args.params, args.overrides, check_variants=False)
    else:
        params = Params.model_validate(apply_overrides({}, args.overrides))
    return params, args.tracking_uri or tracking_uri(params)
