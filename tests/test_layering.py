"""The arrows point one way: the core knows no orchestration, the stages know no Prefect.

Read from the source with ``ast`` (every import, module level or inside functions, in every module
of every subpackage), so what the documentation says about each layer's imports is checked, not
assumed.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported(package: str) -> dict[str, set[str]]:
    """Top-level names each module of ``package`` (subpackages included) imports, by file."""
    out = {}
    for f in sorted((ROOT / package).rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
        out[str(f.relative_to(ROOT))] = names
    return out


def test_every_package_of_the_three_layers_is_scanned():
    scanned = {str(Path(p).parent) for pkg in ("gan_models", "tasks", "flows") for p in _imported(pkg)}
    assert {"gan_models/data", "gan_models/networks", "gan_models/losses", "gan_models/features",
            "gan_models/metrics", "gan_models/variants", "tasks/reporting", "flows/commands"} <= scanned


def test_the_core_imports_no_orchestration_tracking_or_stage_code():
    allowed = {"torch", "torchvision", "numpy", "scipy", "PIL", "matplotlib", "tqdm", "sklearn", "mlxtend", "lpips",
               "gan_models", "__future__"}
    for path, names in _imported("gan_models").items():
        third_party = {n for n in names if n not in sys.stdlib_module_names}
        assert third_party <= allowed, (path, third_party - allowed)


def test_stages_are_plain_functions_without_prefect_or_flows():
    for path, names in _imported("tasks").items():
        assert not names & {"prefect", "prefect_dask", "flows"}, (path, names & {"prefect", "flows"})
        if not path.startswith("tasks/reporting/"):
            assert "mlflow" not in names, path  # MLflow is reached through tasks.reporting only


def test_the_stages_do_not_import_the_reporting():
    """Reporting reads what the stages wrote; a stage's code (its fingerprint) never includes it."""
    from tasks.stages import STAGES, code_files

    for st in STAGES:
        assert not [f for f in code_files(st.module) if f.startswith("tasks/reporting/")], st.name
