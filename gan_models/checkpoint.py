"""Self-describing checkpoints, written atomically and verified on load.

A checkpoint is a dict of plain types and tensors (so it loads with ``weights_only=True``, which
cannot run code from the file).  Each checkpoint directory keeps an ``index.json`` listing every
complete checkpoint with its step and SHA-256; a file that is not in the index, or whose hash
differs, is never loaded (the train stage then falls back to the previous good one).
"""

from __future__ import annotations

import io
import json
import os
import sys
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write_bytes, atomic_write_json, sha256_bytes

FORMAT = "gan-pipeline-checkpoint/1"
INDEX = "index.json"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated, corrupt or not ours."""


def _canonical(obj: Any) -> Any:
    """``obj`` with every string interned.  Pickle memoises by object identity, so a payload
    holding equal strings as distinct objects (keys of a state loaded from an earlier checkpoint)
    serialises to other bytes than one holding them as one object: interning makes the bytes a
    function of the content, so a resumed run writes the checkpoints an uninterrupted one does."""
    if isinstance(obj, str):
        return sys.intern(obj)
    if isinstance(obj, dict):
        out = type(obj)((_canonical(k), _canonical(v)) for k, v in obj.items())  # OrderedDict stays one
        if hasattr(obj, "_metadata"):  # a module state_dict's version records
            out._metadata = _canonical(obj._metadata)
        return out
    if isinstance(obj, list):
        return [_canonical(v) for v in obj]
    if isinstance(obj, tuple) and type(obj) is tuple:
        return tuple(_canonical(v) for v in obj)
    return obj


def checkpoint_bytes(payload: dict[str, Any]) -> bytes:
    buf = io.BytesIO()
    torch.save(_canonical({"format": FORMAT, **payload}), buf)
    return buf.getvalue()


def read_index(directory: str | os.PathLike) -> list[dict[str, Any]]:
    path = Path(directory) / INDEX
    if not path.exists():
        return []
    try:
        entries = json.loads(path.read_text())["checkpoints"]
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint index {path} is corrupt ({e}); delete the directory to retrain") from e
    return sorted(entries, key=lambda e: e["step"])


def save_checkpoint(directory: str | os.PathLike, step: int, payload: dict[str, Any]) -> Path:
    """Write ``step_XXXXXXX.pt`` atomically, then record it (with its hash) in the index."""
    directory = Path(directory)
    data = checkpoint_bytes({**payload, "step": step})
    name = f"step_{step:07d}.pt"
    atomic_write_bytes(directory / name, data)
    entries = [e for e in read_index(directory) if e["step"] != step]
    entries.append({"step": step, "file": name, "sha256": sha256_bytes(data)})
    atomic_write_json(directory / INDEX, {"format": FORMAT, "checkpoints": sorted(entries, key=lambda e: e["step"])})
    return directory / name


def load_checkpoint(path: str | os.PathLike, expected_sha256: str | None = None,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; verify its hash when one is given."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    data = path.read_bytes()
    if expected_sha256 is not None and sha256_bytes(data) != expected_sha256:
        raise CheckpointError(f"checkpoint {path} is corrupt or truncated (SHA-256 differs from the one "
                              "recorded when it was written)")
    try:
        ckpt = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, pickle with code in it, ...
        raise CheckpointError(f"checkpoint {path} cannot be read safely: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a checkpoint of this pipeline (format {FORMAT!r} expected)")
    return ckpt


def prune_checkpoints(directory: str | os.PathLike, keep) -> list[dict[str, Any]]:
    """Keep the index entries for which ``keep(entry)`` is true: rewrite the index first, then
    delete the other files (a crash in between leaves only unlisted files, never listed ones
    missing).  Returns the kept entries."""
    directory = Path(directory)
    entries = read_index(directory)
    kept = [e for e in entries if keep(e)]
    if len(kept) != len(entries):
        atomic_write_json(directory / INDEX, {"format": FORMAT, "checkpoints": kept})
        for e in entries:
            if e not in kept:
                (directory / e["file"]).unlink(missing_ok=True)
    return kept
