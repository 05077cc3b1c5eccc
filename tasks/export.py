"""Stage 5, export: samples of a variant's selected checkpoint as files people look at and use.

Images: grid.png (fixed noise), images/NNN.png, samples.npz (uint8 images and their noise) and
interpolation.png (latent walks: each row a spherical interpolation between two noise vectors).
2D mixtures: scatter.png (samples over the real data) and samples.npz.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import torch

from gan_models import images as I
from gan_models.training import generate
from gan_models.variants import generator_from_checkpoint

from .common import Layout, configure_threads, fingerprint, load_prepared, up_to_date, write_record
from .config import Params
from .evaluate import load_selected

log = logging.getLogger(__name__)

WALK_ROWS = 8


def export(params: Params, variant: str, layout: Layout = Layout()) -> dict[str, Any]:
    threads = configure_threads(params.train.threads, params.train.parallel)
    prep = load_prepared(layout)
    cfg = params.export
    ckpt, selection = load_selected(layout, variant)
    out = layout.samples_dir(variant)
    fp = fingerprint("export", cfg.model_dump(), selection["best_sha256"], threads)
    if up_to_date(out / "export.json", fp):
        log.info("export %s: up to date", variant)
        return json.loads((out / "export.json").read_text())
    G, z_dim = generator_from_checkpoint(ckpt)
    gen = torch.Generator().manual_seed(cfg.seed)
    z = torch.randn(max(cfg.n_array, cfg.grid_size, cfg.n_images), z_dim, generator=gen)
    x = generate(G, z)
    out.mkdir(parents=True, exist_ok=True)
    files = []
    title = f"{variant} (step {ckpt['step']})"
    if prep.info.kind == "points":
        from gan_models.data import save_arrays

        save_arrays(out / "samples.npz", x=x[:cfg.n_array].numpy(), z=z[:cfg.n_array].numpy())
        I.scatter_png(out / "scatter.png", prep.held_x, x[:cfg.n_array].numpy(),
                      np.asarray(prep.manifest["centers"]), title)
        files += [out / "samples.npz", out / "scatter.png"]
    else:
        from gan_models.data import save_arrays

        scale = max(1, 64 // prep.info.shape[-1])  # small images are shown enlarged
        I.save_png(out / "grid.png", I.grid(x[:cfg.grid_size]), scale=scale)
        for stale in (out / "images").glob("*.png") if (out / "images").exists() else []:
            stale.unlink()
        for i in range(cfg.n_images):
            I.save_png(out / "images" / f"{i:03d}.png", I.to_uint8(x[i:i + 1])[0], scale=scale)
        save_arrays(out / "samples.npz", x=I.to_uint8(x[:cfg.n_array]).transpose(0, 3, 1, 2),
                    z=z[:cfg.n_array].numpy())
        t = torch.linspace(0, 1, cfg.interpolation_steps)
        ends = torch.randn(WALK_ROWS, 2, z_dim, generator=gen)
        walk = torch.cat([I.slerp(a, b, t) for a, b in ends])
        I.save_png(out / "interpolation.png", I.grid(generate(G, walk), nrow=cfg.interpolation_steps), scale=scale)
        files += [out / "grid.png", out / "samples.npz", out / "interpolation.png"]
        files += [out / "images" / f"{i:03d}.png" for i in range(cfg.n_images)]
    write_record(out / "export.json", {"fingerprint": fp, "variant": variant, "step": int(ckpt["step"]),
                                       "seed": cfg.seed, "files": [str(f.relative_to(out)) for f in files]}, files)
    return json.loads((out / "export.json").read_text())
