"""Stage records: the fingerprint a stage is skipped by, the JSON record it writes last, the
code version, and the CSV tables ``dvc plots`` reads."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

from gan_models.files import atomic_write_bytes, atomic_write_json, sha256_file


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (configs, input hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def file_hashes(paths: list[Path], root: Path) -> dict[str, str]:
    """SHA-256 of each file by its path relative to ``root`` (``../`` for one beside it)."""
    return {os.path.relpath(p, root): sha256_file(p) for p in paths}


def up_to_date(record_path: Path, fp: str) -> bool:
    """True when ``record_path`` (a stage's JSON record) carries ``fp`` and every output it lists
    is present with the recorded hash: the stage can be skipped."""
    try:
        rec = json.loads(record_path.read_text())
    except (OSError, ValueError):
        return False
    if rec.get("fingerprint") != fp:
        return False
    base = record_path.parent
    try:
        return all(sha256_file(base / rel) == h for rel, h in rec.get("outputs", {}).items())
    except OSError:
        return False


def write_record(record_path: Path, record: dict[str, Any], outputs: list[Path]) -> None:
    """Write a stage's JSON record last, listing its outputs' hashes (so a crash leaves no record)."""
    record = {**record, "outputs": file_hashes(outputs, record_path.parent)}
    atomic_write_json(record_path, record)


@lru_cache(maxsize=1)
def code_version() -> str:
    """``<git commit>`` (``+dirty`` when the tracked code differs), or the package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "gan_models", "tasks", "flows"], cwd=here, capture_output=True, text=True,
                               timeout=10, check=True).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from gan_models import __version__
        return f"gan-pipeline {__version__} (no git)"


def plot_column(name: str) -> str:
    """A metric name as a CSV column DVC's plots can address (``loss/D`` -> ``loss_D``)."""
    return name.replace("/", "_").replace(".", "_")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """Rows as a CSV table (``step`` first, then the other columns by name, ``plot_column``
    names, empty cells where a row lacks a value), written atomically; read by ``dvc plots``.
    The columns do not depend on the rows' key order, so a resumed run writes the same bytes."""
    keys = {k for r in rows for k in r}
    columns = (["step"] if "step" in keys else []) + sorted(keys - {"step"})
    fmt = lambda v: "" if v is None else (repr(float(v)) if isinstance(v, float) else str(v))  # noqa: E731
    lines = [",".join(plot_column(c) for c in columns)]
    lines += [",".join(fmt(r.get(c)) for c in columns) for r in rows]
    atomic_write_bytes(Path(path), ("\n".join(lines) + "\n").encode())
