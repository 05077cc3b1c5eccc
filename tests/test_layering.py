"""The arrows point one way: the core knows no orchestration, the stages know no Prefect.

Read from the source with ``ast`` (every import, module level or inside functions), so what the
README says about each layer's imports is checked, not assumed.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _imported(package: str) -> dict[str, set[str]]:
    out = {}
    for f in sorted((ROOT / package).glob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                names |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
        out[str(f.relative_to(ROOT))] = names
    return out


def test_the_core_imports_no_orchestration_tracking_or_stage_code():
    allowed = {"torch", "torchvision", "numpy", "scipy", "PIL", "matplotlib", "tqdm", "sklearn", "mlxtend", "lpips",
               "gan_models", "__future__"}
    for path, names in _imported("gan_models").items():
        third_party = {n for n in names if n not in __import__("sys").stdlib_module_names}
        assert third_party <= allowed, (path, third_party - allowed)


def test_stages_are_plain_functions_without_prefect_or_flows():
    for path, names in _imported("tasks").items():
        assert not names & {"prefect", "prefect_dask", "flows"}, (path, names & {"prefect", "flows"})
        if path not in ("tasks/tracking.py", "tasks/mlflow_generator.py", "tasks/compare.py"):
            assert "mlflow" not in names, path  # MLflow is reached through tasks.reporting.tracking only
