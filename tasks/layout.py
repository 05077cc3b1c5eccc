"""Where every stage reads and writes (the DVC outs), and the prepared data, verified."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_models.data import DataError, DataInfo, content_hash, load_arrays, load_rows
from gan_models.files import sha256_file


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
                        translation=t["task"] if t else None, source_shape=tuple(t["source_shape"]) if t else None,
                        inputs=tuple((k, int(v["dim"])) for k, v in m.get("inputs", {}).items()))

    @property
    def translation(self) -> dict[str, Any] | None:
        """The manifest's translation record (task, shapes, ground truth, baselines), or None."""
        return self.manifest.get("translation")

    @property
    def data_hash(self) -> str:
        return self.manifest["content_hash"]


# The prepared images of each split: .npy files every stage reads memory-mapped (data larger than
# memory trains); labels and per-sample inputs are in train.npz / heldout.npz.
ARRAY_FILES = {"train": "train_x.npy", "heldout": "heldout_x.npy"}
# Prepared data this process has verified, by the identity of its files (path, size, mtime,
# inode): the hashes of gigabytes are read once per process, not once per stage.  Files against
# the manifest's SHA-256; arrays against its content hash.
_FILES_OK: set[tuple] = set()
_VERIFIED: set[tuple] = set()


def _identity(d: Path, names: list[str]) -> tuple:
    out = []
    for name in names:
        s = (d / name).stat()
        out.append((str((d / name).resolve()), s.st_size, s.st_mtime_ns, s.st_ino))
    return tuple(out)


def read_manifest(layout: Layout) -> dict[str, Any]:
    """The prepare stage's manifest, after checking every file it lists against its SHA-256 (once
    per process for unchanged files)."""
    d = layout.prepared
    manifest_path = d / "manifest.json"
    if not manifest_path.exists():
        raise DataError(f"{manifest_path} not found; run the prepare stage first (python -m flows prepare)")
    try:
        manifest = json.loads(manifest_path.read_text())
    except ValueError as e:
        raise DataError(f"{manifest_path} is corrupt ({e}); rerun python -m flows prepare") from e
    outputs = manifest.get("outputs", {})
    for rel in outputs:
        if not (d / rel).exists():
            raise DataError(f"{d / rel} is missing from the prepared data; rerun python -m flows prepare")
    key = _identity(d, ["manifest.json", *outputs])
    if key not in _FILES_OK:
        for rel, expected in outputs.items():
            if sha256_file(d / rel) != expected:
                raise DataError(f"{d / rel} is corrupt or was changed (SHA-256 differs from the manifest); "
                                "rerun python -m flows prepare")
        _FILES_OK.add(key)
    return manifest


def load_prepared(layout: Layout) -> Prepared:
    """The prepared data, verified against its manifest; the images memory-mapped."""
    d = layout.prepared
    manifest = read_manifest(layout)
    key = _identity(d, ["manifest.json", *manifest.get("outputs", {})])
    tr, he = load_arrays(d / "train.npz"), load_arrays(d / "heldout.npz")
    tx, hx = load_rows(d / ARRAY_FILES["train"]), load_rows(d / ARRAY_FILES["heldout"])
    source = [tr["a"], tr["ya"], he["a"], he["ya"]] if "a" in tr else []
    train_c, held_c = inputs_of(tr), inputs_of(he)
    if key not in _VERIFIED:
        h = content_hash(tx, tr["y"], hx, he["y"], *source)
        inputs_ok = (content_hash(*input_arrays(train_c, held_c)) == manifest["inputs_hash"]
                     if "inputs_hash" in manifest else not train_c)
        if h != manifest.get("content_hash") or not inputs_ok:
            raise DataError(f"prepared data in {d} does not match its manifest (content hash differs): a file was "
                            "changed or damaged; rerun python -m flows prepare")
        _VERIFIED.add(key)
    return Prepared(tx, tr["y"], hx, he["y"], manifest, *source, train_c=train_c, held_c=held_c)


INPUT_PREFIX = "c_"  # per-sample inputs are stored in train.npz / heldout.npz as c_<name>


def inputs_of(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k[len(INPUT_PREFIX):]: v for k, v in arrays.items() if k.startswith(INPUT_PREFIX)}


def input_arrays(train_c: dict[str, np.ndarray], held_c: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The per-sample inputs in the order the manifest's ``inputs_hash`` takes them.  They are
    derived from the images (or brought beside them), so the data set's ``content_hash``, which
    names the data in MLflow and the registry, stays that of the images and labels."""
    return [a for k in sorted(train_c) for a in (train_c[k], held_c.get(k, np.zeros(0, np.float32)))]


def cell_args(name: str) -> str:
    """The command-line arguments naming a cell: ``--variant mlp``, or in a study ``--variant mlp
    --seed 3`` for ``mlp/seed_3``."""
    variant, sep, seed = name.partition("/seed_")
    return f"--variant {variant}" + (f" --seed {seed}" if sep else "")


def selection_record(layout: Layout, variant: str) -> dict[str, Any]:
    """The variant's selection record (select's ``selection.json``), whose ``best_sha256`` names
    the selected checkpoint; MissingInputError naming the command to run when there is none."""
    path = layout.selected_dir(variant) / "selection.json"
    try:
        record = json.loads(path.read_text())
        record["best_sha256"]
    except FileNotFoundError:
        raise MissingInputError(f"{path} not found: the variant has no selected checkpoint yet; run "
                                f"python -m flows select {cell_args(variant)} first (or python -m flows run)") from None
    except (ValueError, KeyError, TypeError):
        raise MissingInputError(f"{path} is corrupt; rerun: python -m flows select {cell_args(variant)}") from None
    return record


def load_selected(layout: Layout, variant: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The selected checkpoint (hash-verified against the selection record) and that record."""
    from gan_models.checkpoint import load_checkpoint

    record = selection_record(layout, variant)
    return load_checkpoint(layout.best_checkpoint(variant), record["best_sha256"]), record
