"""Stage 5, export: samples of a variant's selected checkpoint as files people look at and use.

Translation variants (pix2pix, CycleGAN): translation.png (held-out inputs | outputs | ground
truth), translation_ba.png for CycleGAN's other direction, grid.png and images/ of the outputs,
samples.npz with inputs, outputs and truth.
Images: grid.png (fixed noise), images/NNN.png, samples.npz (uint8 images, their noise and, for
conditional variants, labels), interpolation.png (latent walks: each row a spherical
interpolation between two noise vectors), traversal.png (the noise dimensions that move the
output most, each set from -3 to +3 with the others fixed; every dimension's measured effect in
export.json) and, for conditional variants, classes.png (a row per class, the same noise in every
row).
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
    if ckpt["data"].get("task"):  # a translation variant (not any variant on translation data)
        files = _export_translation(G, prep, cfg, out)
        write_record(out / "export.json", {"fingerprint": fp.value, "code": fp.code, "variant": variant,
                                           "step": int(ckpt["step"]), "seed": cfg.seed,
                                           "files": [str(f.relative_to(out)) for f in files]}, files)
        return json.loads((out / "export.json").read_text())
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
        grid_images, traversal = noise_traversal(G, z_dim, n_classes, cfg.seed + 1)
        I.save_png(out / "traversal.png", I.grid(grid_images, nrow=len(TRAVERSAL_VALUES)), scale=scale)
        files.append(out / "traversal.png")
        files += [out / "images" / f"{i:03d}.png" for i in range(cfg.n_images)]
    write_record(out / "export.json", {"fingerprint": fp.value, "code": fp.code, "variant": variant, "step": int(ckpt["step"]),
                                       "seed": cfg.seed, "files": [str(f.relative_to(out)) for f in files],
                                       **({"traversal": traversal} if prep.info.kind == "image" else {})}, files)
    return json.loads((out / "export.json").read_text())


TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # the values one noise dimension takes, a column each
TRAVERSAL_DIMS, TRAVERSAL_BASES, TRAVERSAL_PROBES = 6, 2, 16


@torch.no_grad()
def noise_traversal(G, z_dim: int, n_classes: int, seed: int) -> tuple[torch.Tensor, dict[str, Any]]:
    """Which noise dimensions move the output most, and a grid that moves them one at a time.

    Effect of dimension d: the mean absolute pixel difference (model range [-1, 1]) between
    G(z with z_d = +3) and G(z with z_d = -3) over ``TRAVERSAL_PROBES`` fixed noise vectors (a
    conditional G keeps each probe's label).  The grid: for the ``TRAVERSAL_DIMS`` dimensions of
    largest effect, for each of ``TRAVERSAL_BASES`` fixed noise vectors, a row with z_d set to
    each of ``TRAVERSAL_VALUES`` and every other coordinate unchanged.  Returns (the grid's
    images, row-major, and the record: every dimension's effect, the chosen ones)."""
    gen = torch.Generator().manual_seed(seed)
    probes = torch.randn(TRAVERSAL_PROBES, z_dim, generator=gen)
    probe_y = balanced_labels(TRAVERSAL_PROBES, n_classes)
    ends = probes.repeat(2 * z_dim, 1).view(2, z_dim, TRAVERSAL_PROBES, z_dim)
    for d in range(z_dim):
        ends[0, d, :, d], ends[1, d, :, d] = -3.0, 3.0
    ys = probe_y.repeat(2 * z_dim) if probe_y is not None else None
    imgs = generate(G, ends.reshape(-1, z_dim), ys).reshape(2, z_dim, TRAVERSAL_PROBES, -1)
    effect = (imgs[1] - imgs[0]).abs().mean((1, 2))  # (z_dim,)
    dims = effect.argsort(descending=True)[:min(TRAVERSAL_DIMS, z_dim)].tolist()
    bases = torch.randn(TRAVERSAL_BASES, z_dim, generator=gen)
    base_y = balanced_labels(TRAVERSAL_BASES, n_classes)
    rows, row_y = [], []
    for d in dims:
        for b in range(TRAVERSAL_BASES):
            row = bases[b].repeat(len(TRAVERSAL_VALUES), 1)
            row[:, d] = torch.tensor(TRAVERSAL_VALUES)
            rows.append(row)
            if base_y is not None:
                row_y.append(base_y[b].repeat(len(TRAVERSAL_VALUES)))
    grid = generate(G, torch.cat(rows), torch.cat(row_y) if row_y else None)
    record = {"space": "z", "values": list(TRAVERSAL_VALUES), "rows": "each chosen dimension x each base vector",
              "dims": dims, "effect": [round(float(e), 6) for e in effect],
              "measure": f"mean |G(z_d=+3) - G(z_d=-3)| over {TRAVERSAL_PROBES} fixed noise vectors, pixels in [-1, 1]"}
    return grid, record


TRANSLATION_COLUMNS = 8  # images per row of translation.png


def _export_translation(G, prep, cfg, out) -> list:
    """translation.png: held-out inputs, their translations and (where known) the ground truth,
    in rows of three (input | output | truth), eight per row; for CycleGAN also translation_ba.png
    (B -> A); grid.png and images/ of the outputs; samples.npz with the arrays."""
    from .scoring import translate

    out.mkdir(parents=True, exist_ok=True)
    truth_known = prep.translation["ground_truth"]
    scale = max(1, 64 // prep.info.shape[-1])
    n = min(max(cfg.n_array, cfg.grid_size, cfg.n_images), len(prep.held_a))
    source, truth = prep.held_a[:n], prep.held_x[:n]
    fake = translate(G, source)
    files = []

    def rows_png(path, inputs, outputs, targets) -> None:
        k = min(4 * TRANSLATION_COLUMNS, len(inputs))
        blocks = []
        for i in range(0, k, TRANSLATION_COLUMNS):
            sl = slice(i, min(i + TRANSLATION_COLUMNS, k))
            group = [_model(inputs[sl]), outputs[sl]] + ([_model(targets[sl])] if targets is not None else [])
            blocks += [_pad_channels(g, max(t.shape[1] for t in group)) for g in group]
        # every row holds TRANSLATION_COLUMNS images: pad a short last group with blank (-1) tiles
        tiles = [torch.cat([b, -torch.ones(TRANSLATION_COLUMNS - len(b), *b.shape[1:])]) for b in blocks]
        I.save_png(path, I.grid(torch.cat(tiles), nrow=TRANSLATION_COLUMNS), scale=scale)
        files.append(path)

    rows_png(out / "translation.png", source, fake, truth if truth_known else None)
    arrays = {"a": source, "x": I.to_uint8(fake).transpose(0, 3, 1, 2), "y": prep.held_ya[:n]}
    if truth_known:
        arrays["truth"] = truth
    if hasattr(G, "ba"):  # CycleGAN: the other direction, from held-out B images
        back = translate(G.ba, truth)
        rows_png(out / "translation_ba.png", truth, back, source if truth_known else None)
        arrays["b"], arrays["x_ba"] = truth, I.to_uint8(back).transpose(0, 3, 1, 2)
    I.save_png(out / "grid.png", I.grid(fake[:cfg.grid_size]), scale=scale)
    files.append(out / "grid.png")
    for stale in (out / "images").glob("*.png") if (out / "images").exists() else []:
        stale.unlink()
    for i in range(min(cfg.n_images, n)):
        I.save_png(out / "images" / f"{i:03d}.png", I.to_uint8(fake[i:i + 1])[0], scale=scale)
        files.append(out / "images" / f"{i:03d}.png")
    save_arrays(out / "samples.npz", **{k: v[:cfg.n_array] for k, v in arrays.items()})
    files.append(out / "samples.npz")
    return files


def _model(x: np.ndarray) -> torch.Tensor:
    from gan_models.data import to_model_range

    return to_model_range(torch.from_numpy(np.ascontiguousarray(x)))


def _pad_channels(x: torch.Tensor, c: int) -> torch.Tensor:
    """Grey shown beside RGB (an edge map beside a photo) is repeated to three channels."""
    return x.expand(-1, c, -1, -1) if x.shape[1] != c else x
