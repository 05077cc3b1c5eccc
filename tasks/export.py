"""Stage 5, export: samples of a variant's selected checkpoint as files people look at and use.

Images: grid.png (fixed noise), images/NNN.png, samples.npz (uint8 images, their noise and, for
conditional variants, labels), interpolation.png (latent walks: each row a spherical
interpolation between two noise vectors) and, for conditional variants, classes.png (a row per
class, the same noise in every row).
2D mixtures: scatter.png (samples over the real data) and samples.npz.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import torch

from gan_models import images as I
from gan_models.data import save_arrays
from gan_models.training import balanced_labels, generate
from gan_models.variants import generator_from_checkpoint

from .common import Layout, configure_threads, load_prepared, up_to_date, write_record
from .config import Params
from .evaluate import load_selected
from .stages import stage_fingerprint

log = logging.getLogger(__name__)

WALK_ROWS = 8


def export(params: Params, variant: str, layout: Layout = Layout()) -> dict[str, Any]:
    configure_threads(params.train.threads, params.train.parallel)
    prep = load_prepared(layout)
    cfg = params.export
    ckpt, selection = load_selected(layout, variant)
    out = layout.samples_dir(variant)
    fp = stage_fingerprint("export", params, variant, layout)
    if up_to_date(out / "export.json", fp.value):
        log.info("export %s: up to date", variant)
        return json.loads((out / "export.json").read_text())
    G, z_dim = generator_from_checkpoint(ckpt)
    n_classes = getattr(G, "n_classes", 0)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = max(cfg.n_array, cfg.grid_size, cfg.n_images)
    z = torch.randn(n, z_dim, generator=gen)
    y = balanced_labels(n, n_classes)
    x = generate(G, z, y)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    title = f"{variant} (step {ckpt['step']})"
    if prep.info.kind == "points":
        save_arrays(out / "samples.npz", x=x[:cfg.n_array].numpy(), z=z[:cfg.n_array].numpy())
        I.scatter_png(out / "scatter.png", prep.held_x, x[:cfg.n_array].numpy(),
                      np.asarray(prep.manifest["centers"]), title)
        files += [out / "samples.npz", out / "scatter.png"]
    else:
        scale = max(1, 64 // prep.info.shape[-1])  # small images are shown enlarged
        I.save_png(out / "grid.png", I.grid(x[:cfg.grid_size]), scale=scale)
        for stale in (out / "images").glob("*.png") if (out / "images").exists() else []:
            stale.unlink()
        for i in range(cfg.n_images):
            I.save_png(out / "images" / f"{i:03d}.png", I.to_uint8(x[i:i + 1])[0], scale=scale)
        arrays = {"x": I.to_uint8(x[:cfg.n_array]).transpose(0, 3, 1, 2), "z": z[:cfg.n_array].numpy()}
        if y is not None:
            arrays["y"] = y[:cfg.n_array].numpy()
        save_arrays(out / "samples.npz", **arrays)
        t = torch.linspace(0, 1, cfg.interpolation_steps)
        ends = torch.randn(WALK_ROWS, 2, z_dim, generator=gen)
        walk = torch.cat([I.slerp(a, b, t) for a, b in ends])
        walk_y = balanced_labels(WALK_ROWS, n_classes)
        walk_y = walk_y.repeat_interleave(cfg.interpolation_steps) if walk_y is not None else None
        I.save_png(out / "interpolation.png", I.grid(generate(G, walk, walk_y), nrow=cfg.interpolation_steps),
                   scale=scale)
        files += [out / "grid.png", out / "samples.npz", out / "interpolation.png"]
        if n_classes:  # one row per class, the same noise in every row
            per = WALK_ROWS
            zc = torch.randn(per, z_dim, generator=gen).repeat(n_classes, 1)
            yc = torch.arange(n_classes).repeat_interleave(per)
            I.save_png(out / "classes.png", I.grid(generate(G, zc, yc), nrow=per), scale=scale)
            files.append(out / "classes.png")
        files += [out / "images" / f"{i:03d}.png" for i in range(cfg.n_images)]
    write_record(out / "export.json", {"fingerprint": fp.value, "code": fp.code, "variant": variant, "step": int(ckpt["step"]),
                                       "seed": cfg.seed, "files": [str(f.relative_to(out)) for f in files]}, files)
    return json.loads((out / "export.json").read_text())
