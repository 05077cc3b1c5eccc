"""What the stages share: the file layout, the prepared data, fingerprints and the code version."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import subprocess
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch

from gan_models.checkpoint import atomic_write_bytes, atomic_write_json, sha256_file
from gan_models.data import DataError, DataInfo, content_hash, load_arrays
from gan_models.runtime import keep_freed_memory


@dataclass(frozen=True)
class Layout:
    """Where every stage reads and writes, relative to the project root (the DVC outs)."""

    root: Path = Path(".")

    @property
    def prepared(self) -> Path:
        return self.root / "data" / "prepared"

    def train_dir(self, variant: str) -> Path:
        return self.root / "models" / variant / "train"

    def selected_dir(self, variant: str) -> Path:
        return self.root / "models" / variant / "selected"

    def best_checkpoint(self, variant: str) -> Path:
        return self.selected_dir(variant) / "best.pt"

    def metrics_file(self, variant: str) -> Path:
        return self.root / "metrics" / f"{variant}.json"

    def samples_dir(self, variant: str) -> Path:
        return self.root / "samples" / variant


class MissingInputError(DataError):
    """A stage's input is missing or was changed: the message names the stage to run first."""


@dataclass
class Prepared:
    """The output of the prepare stage, verified against its manifest."""

    train_x: np.ndarray
    train_y: np.ndarray
    held_x: np.ndarray
    held_y: np.ndarray
    manifest: dict[str, Any]
    # Translation data: the input domain A (``*_x`` are the target domain B); None otherwise.
    train_a: np.ndarray | None = None
    train_ya: np.ndarray | None = None
    held_a: np.ndarray | None = None
    held_ya: np.ndarray | None = None
    # Per-sample inputs besides the label (name -> (N,) or (N, d) float32): measured attributes of
    # grey images, a folder's prepare.inputs; what multi-input variants are conditioned on.
    train_c: dict[str, np.ndarray] = field(default_factory=dict)
    held_c: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def info(self) -> DataInfo:
        m = self.manifest
        t = m.get("translation")
        return DataInfo(m["kind"], tuple(m["shape"]), len(m["classes"]) if m["labelled"] else 0,
                        task=t["task"] if t else None, source_shape=tuple(t["source_shape"]) if t else None,
                        inputs=tuple((k, int(v["dim"])) for k, v in m.get("inputs", {}).items()))

    @property
    def translation(self) -> dict[str, Any] | None:
        """The manifest's translation record (task, shapes, ground truth, baselines), or None."""
        return self.manifest.get("translation")

    @property
    def data_hash(self) -> str:
        return self.manifest["content_hash"]


def load_prepared(layout: Layout) -> Prepared:
    d = layout.prepared
    manifest_path = d / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} not found; run the prepare stage first (python -m flows prepare)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise DataError(f"{manifest_path} is corrupt ({e}); rerun python -m flows prepare") from e
    for rel, expected in manifest.get("outputs", {}).items():
        f = d / rel
        if not f.exists():
            raise DataError(f"{f} is missing from the prepared data; rerun python -m flows prepare")
        if sha256_file(f) != expected:
            raise DataError(f"{f} is corrupt or was changed (SHA-256 differs from the manifest); "
                            "rerun python -m flows prepare")
    tr, he = load_arrays(d / "train.npz"), load_arrays(d / "heldout.npz")
    source = [tr["a"], tr["ya"], he["a"], he["ya"]] if "a" in tr else []
    train_c, held_c = inputs_of(tr), inputs_of(he)
    h = content_hash(tr["x"], tr["y"], he["x"], he["y"], *source)
    inputs_ok = (content_hash(*input_arrays(train_c, held_c)) == manifest["inputs_hash"]
                 if "inputs_hash" in manifest else not train_c)
    if h != manifest.get("content_hash") or not inputs_ok:
        raise DataError(f"prepared data in {d} does not match its manifest (content hash differs): a file was "
                        "changed or damaged; rerun python -m flows prepare")
    return Prepared(tr["x"], tr["y"], he["x"], he["y"], manifest, *source, train_c=train_c, held_c=held_c)


INPUT_PREFIX = "c_"  # per-sample inputs are stored in train.npz / heldout.npz as c_<name>


def inputs_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(INPUT_PREFIX):]: v for k, v in arrays.items() if k.startswith(INPUT_PREFIX)}


def input_arrays(train_c: dict[str, np.ndarray], held_c: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The per-sample inputs in the order the manifest's ``inputs_hash`` takes them.  They are
    derived from the images (or brought beside them), so the data set's ``content_hash``, which
    names the data in MLflow and the registry, stays that of the images and labels."""
    return [a for k in sorted(train_c) for a in (train_c[k], held_c.get(k, np.zeros(0, np.float32)))]


def fingerprint(*parts: Any) -> str:
    """A stable hash of JSON-able parts (configs, input hashes)."""
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def file_hashes(paths: list[Path], root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): sha256_file(p) for p in paths}


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


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"train.device={name!r} but no CUDA device is available; use cpu or auto")
    return dev


def resolved_threads(threads: int | None, parallel: int) -> int:
    return threads or max(1, (os.cpu_count() or 1) // max(1, parallel))


def configure_threads(threads: int | None, parallel: int) -> int:
    """Set torch's CPU threads: ``threads``, else cores // parallel.  Every stage calls this with
    the same settings whichever path runs it, because convolution results on the CPU depend on the
    thread count, and a DVC rerun must reproduce a Prefect run bit for bit.  Also keeps freed
    tensor memory in the process (``gan_models.runtime``): faster steps, the same results."""
    keep_freed_memory()
    n = resolved_threads(threads, parallel)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


class RunLockedError(RuntimeError):
    """Another pipeline run holds this project folder."""


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[int]:
    """An exclusive ``fcntl.flock`` on ``path`` (created if needed), held for the ``with`` block;
    yields the file descriptor.  The OS releases it when the process dies, so a killed process
    never leaves it stale.  Non-blocking: raises BlockingIOError when another process holds it."""
    import fcntl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        yield fd
    finally:
        os.close(fd)  # releases the lock


@contextlib.contextmanager
def project_lock(root: Path = Path(".")) -> Iterator[None]:
    """``<root>/.pipeline.lock``, held for a whole ``flows run``: a second run in the same folder
    is refused at once, naming the holder's pid."""
    path = Path(root) / ".pipeline.lock"
    try:
        with file_lock(path, blocking=False) as fd:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
    except BlockingIOError:
        holder = path.read_text(errors="replace").strip() or "unknown"
        raise RunLockedError(f"another pipeline run (pid {holder}) is using {path.parent.resolve()}; "
                             "wait for it to finish, or run in a separate clone") from None


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
