"""Stage 2, train: adversarial training of one variant, seeded, checkpointed and resumable.

Writes ``models/<variant>/train/`` (a persistent DVC out): ``step_XXXXXXX.pt`` checkpoints and
their ``index.json``, ``history.jsonl`` (the logged statistics), ``dynamics.png`` and, last,
``run.json``.  Rerunning continues from the newest valid checkpoint made with the same settings;
with nothing to do it returns at once.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1), it trains data-parallel: one process per GPU
(NCCL) or per CPU worker (gloo); rank 0 alone writes files.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import torch

from gan_models import checkpoint as ck
from gan_models.features import perceptual_network
from gan_models.files import atomic_write_bytes
from gan_models.images import curves_png
from gan_models.networks import conditioning
from gan_models.training import Trainer
from gan_models.variants import build

from .config import Params
from .layout import Layout, load_prepared
from .records import up_to_date, write_csv, write_record
from .runtime import configure_threads, resolve_device
from .stages import stage_fingerprint

log = logging.getLogger(__name__)


def _distributed(device_setting: str) -> tuple[int, int, torch.device | None]:
    """Join the process group when launched by torchrun: (rank, world size, this rank's device)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, None
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_setting != "cpu" and torch.cuda.is_available()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    return dist.get_rank(), dist.get_world_size(), device


def train(params: Params, variant: str, layout: Layout = Layout(), *,
          on_log: Callable[[int, dict[str, float]], None] | None = None,
          progress: bool = True, position: int | None = None) -> dict[str, Any]:
    rank, world, dist_device = _distributed(params.device)
    try:
        return _train(params, variant, layout, on_log=on_log, progress=progress and rank == 0,
                      position=position, rank=rank, world=world, dist_device=dist_device)
    finally:
        if world > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()


def _train(params: Params, variant: str, layout: Layout, *, on_log, progress: bool, position: int | None,
           rank: int, world: int, dist_device: torch.device | None) -> dict[str, Any]:
    cfg = params.train
    # Each process gets its share of the cores (torchrun runs `world` of them on this machine).
    configure_threads(cfg.threads, cfg.parallel * world)
    prep = load_prepared(layout)
    cell = params.cell(variant)  # the variant, or in a study the variant and one of the seeds
    spec = params.variant_spec(cell.variant)
    steps = params.variant_steps(cell.variant)
    device = dist_device or resolve_device(params.device)
    out = layout.train_dir(variant)
    # Everything that changes the weights or the files (settings, data, code, threads, device);
    # not the step count, so a longer run continues where a shorter one stopped.
    fp = stage_fingerprint("train", params, variant, layout, world=world)
    done_fp = fp.value
    if up_to_date(out / "run.json", done_fp):
        log.info("train %s: up to date (%d steps)", variant, steps)
        return _summary(out, seconds=0.0, steps_done=0)

    torch.manual_seed(cell.seed)  # network initialisation
    gan = build(spec, prep.info,
                perceptual_net=lambda: perceptual_network(spec.tricks.perceptual_net, layout.prepared, device=device))
    # Progressive growing schedules resolution by step / steps, a learning-rate decay the rate: their
    # checkpoints belong to one step count, and are not continued under another (others' are).
    progressive = (any(hasattr(m, "set_progress") for net in (gan.G, gan.D) for m in net.modules())
                   or bool(spec.lr_decay))
    resume_fp = fp.value if progressive else fp.resume
    if gan.conditioned:  # rows of the inputs it is conditioned on: label and per-image values
        conditions = conditioning.table(gan.G.inputs, prep.train_y, prep.train_c)
    else:
        conditions = torch.from_numpy(prep.train_y) if prep.info.n_classes else None
    source = torch.from_numpy(prep.train_a) if gan.translation else None  # a translation variant's inputs
    trainer = Trainer(gan, prep.train_x, batch_size=cfg.batch_size, seed=cell.seed,
                      device=device, conditions=conditions, source=source, amp=cfg.amp)
    history = _resume(trainer, out, resume_fp, steps, world)
    if rank == 0:
        (out / "run.json").unlink(missing_ok=True)  # written again only when training completes
        out.mkdir(parents=True, exist_ok=True)

    meta = {"variant": cell.variant, "spec": spec.to_dict(), "fingerprint": resume_fp, "seed": cell.seed,
            "train": {"batch_size": cfg.batch_size, "device": str(device), "processes": world,
                      **({"amp": cfg.amp} if cfg.amp != "off" else {}),
                      # only where the weights depend on it: a continued run's checkpoints then equal
                      # an uninterrupted run's byte for byte
                      **({"steps": steps} if progressive else {})},
            "data": {"hash": prep.data_hash, "kind": prep.info.kind, "shape": list(prep.info.shape),
                     "n_classes": prep.info.n_classes, "dataset": prep.manifest["dataset"],
                     **({"inputs": [list(i) for i in prep.info.inputs]} if gan.conditioned else {}),
                     **({"task": prep.info.translation, "source_shape": list(prep.info.source_shape)} if gan.translation
                        else {})}}

    if rank != 0:  # the other processes train and write nothing
        trainer.run(steps, log_every=cfg.log_every, progress=False)
        return {"variant": variant, "steps": steps, "rank": rank}

    def logged(step: int, stats: dict[str, float]) -> None:
        history.append({"step": step, **stats})
        if on_log is not None:
            on_log(step, stats)

    def checkpointed(step: int, state: dict[str, Any]) -> None:
        # History first: a process killed between the two writes then resumes from the previous
        # checkpoint and drops the later history lines, instead of resuming from a checkpoint
        # whose history was never written.
        _write_history(out, history)
        ck.save_checkpoint(out, step, {**state, **meta})

    t0 = time.time()
    start = trainer.step
    trainer.run(steps, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                on_log=logged, on_checkpoint=checkpointed, progress=progress, desc=variant, position=position)
    seconds = time.time() - t0
    _prune_off_grid(out, cfg.checkpoint_every, steps)
    curves_png(out / "dynamics.png", history, f"{variant}: training dynamics")
    write_csv(out / "curves.csv", history)  # for `dvc plots` (dvc.yaml's plots section)
    outputs = sorted(out.glob("step_*.pt")) + [out / ck.INDEX, out / "history.jsonl", out / "dynamics.png",
                                               out / "curves.csv"]
    # Only deterministic content here (no timings, no code version): a rerun reproduces the
    # stage's files bit for bit, so DVC and Prefect runs hash the same.
    write_record(out / "run.json", {"fingerprint": done_fp, "code": fp.code, "variant": cell.variant,
                                    **({"seed": cell.seed} if cell.study else {}), "steps": steps,
                                    # a translation variant's task: select scores it on held-out inputs
                                    **({"task": meta["data"]["task"]} if gan.translation else {}),
                                    "final": history[-1] if history else {}}, outputs)
    return _summary(out, seconds=seconds, steps_done=steps - start)


def _resume(trainer: Trainer, out: Path, resume_fp: str, steps: int, world: int = 1) -> list[dict[str, Any]]:
    """Load the newest valid checkpoint at or before ``steps`` made with the same settings; drop
    later ones.  Anything made with other settings is removed.  Returns the logged history.
    With several processes every rank loads the same checkpoint before rank 0 cleans up."""
    found, entries = _find_resume(out, resume_fp, steps)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        if trainer.rank != 0:
            if found is not None:
                trainer.load_state_dict(found)
            dist.barrier()
            return []
    try:
        return _clean_and_load(trainer, out, found, entries)
    finally:
        if world > 1:
            dist.barrier()


def _find_resume(out: Path, resume_fp: str, steps: int) -> tuple[dict[str, Any] | None, list]:
    if not out.exists():
        return None, []
    try:
        entries = ck.read_index(out)
    except ck.CheckpointError as e:
        log.warning("%s; starting over", e)
        entries = []
    found = None
    for entry in reversed(entries):
        if entry["step"] > steps:
            continue
        try:
            ckpt = ck.load_checkpoint(out / entry["file"], entry["sha256"])
        except ck.CheckpointError as e:
            log.warning("skipping bad checkpoint: %s", e)
            continue
        if ckpt.get("fingerprint") == resume_fp:
            found = ckpt
        break
    return found, entries


def _clean_and_load(trainer: Trainer, out: Path, found: dict[str, Any] | None, entries: list) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    if found is None:
        if entries or any(out.iterdir()):
            log.info("%s: no reusable checkpoint (settings changed or none valid); starting from step 0", out)
        shutil.rmtree(out)
        return []
    trainer.load_state_dict(found)
    ck.prune_checkpoints(out, lambda e: e["step"] <= trainer.step)
    history = []
    if (out / "history.jsonl").exists():
        history = [h for h in map(json.loads, (out / "history.jsonl").read_text().splitlines())
                   if h["step"] <= trainer.step]
    log.info("resuming %s from step %d", out, trainer.step)
    return history


def _prune_off_grid(out: Path, every: int, steps: int) -> None:
    """Drop checkpoints left off the ``checkpoint_every`` grid by an earlier, shorter run, so the
    files are those of an uninterrupted run."""
    ck.prune_checkpoints(out, lambda e: e["step"] % every == 0 or e["step"] == steps)


def _write_history(out: Path, history: list[dict[str, Any]]) -> None:
    atomic_write_bytes(out / "history.jsonl", "".join(json.dumps(h, sort_keys=True) + "\n" for h in history).encode())


def _summary(out: Path, seconds: float, steps_done: int) -> dict[str, Any]:
    """What the caller logs: the record plus this call's timing (0 steps when it was up to date)."""
    rec = json.loads((out / "run.json").read_text())
    return {"variant": rec["variant"], "steps": rec["steps"], "final": rec["final"], "path": str(out),
            "steps_trained": steps_done, "seconds": round(seconds, 3),
            "steps_per_second": round(steps_done / seconds, 2) if seconds > 0 else None}
