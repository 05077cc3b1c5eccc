"""Stage 5, export: samples of a variant's selected checkpoint as files people look at and use.

Translation variants (pix2pix, CycleGAN): translation.png (held-out inputs | outputs | ground
truth), translation_ba.png for CycleGAN's other direction, grid.png and images/ of the outputs,
samples.npz with inputs, outputs and truth.
Images: grid.png (fixed noise), images/NNN.png, samples.npz (uint8 images, their noise and, for
conditional variants, labels), interpolation.png (latent walks: each row a spherical
interpolation between two noise vectors), traversal.png (the noise dimensions that move the
output most, each set from -3 to +3 with the others fixed; every dimension's measured effect in
export.json) and, for conditional variants, classes.png (a row per class, the same noise in every
row).  A StyleGAN also gets traversal_w.png (the same in its style space w), style_mixing.png
(coarse styles from the row sources, fine from the column sources) and truncation.png (a row per
noise vector, psi from 0 to 1).  A variant conditioned on several inputs gets input_<name>.png
per input (that input varied along each row, noise and the other inputs fixed; ``input_grid``)
and the requested conditions in samples.npz (``c``).
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
from gan_models.data.attributes import ATTRIBUTES, agreement
from gan_models.data.attributes import measure as measure_attributes
from gan_models.networks import conditioning as cond
from gan_models.networks.conditioning import conditions_for
from gan_models.training import generate
from gan_models.variants import generator_from_checkpoint

from .config import Params
from .layout import Layout, load_prepared, load_selected
from .records import up_to_date, write_record
from .runtime import configure_threads, resolve_device
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
    G, z_dim = generator_from_checkpoint(ckpt, resolve_device(params.device))
    if ckpt["data"].get("task"):  # a translation variant (not any variant on translation data)
        files = _export_translation(G, prep, cfg, out)
        write_record(out / "export.json", {"fingerprint": fp.value, "code": fp.code, "variant": variant,
                                           "step": int(ckpt["step"]), "seed": cfg.seed,
                                           "files": [str(f.relative_to(out)) for f in files]}, files)
        return json.loads((out / "export.json").read_text())
    n_classes = getattr(G, "n_classes", 0)  # a label-conditional G (cGAN, ACGAN)
    gen = torch.Generator().manual_seed(cfg.seed)
    n = max(cfg.n_array, cfg.grid_size, cfg.n_images)
    z = torch.randn(n, z_dim, generator=gen)
    y = conditions_for(G, n)
    x = generate(G, z, y)
    out.mkdir(parents=True, exist_ok=True)
    files, extra = [], {}
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
        labels = cond.requested_labels(G, y)
        if labels is not None:
            arrays["y"] = labels[:cfg.n_array].numpy()
        if cond.is_conditioned(G):  # every input's requested values, columns as in export.json "inputs"
            arrays["c"] = y[:cfg.n_array].numpy()
        save_arrays(out / "samples.npz", **arrays)
        t = torch.linspace(0, 1, cfg.interpolation_steps)
        ends = torch.randn(WALK_ROWS, 2, z_dim, generator=gen)
        walk = torch.cat([I.slerp(a, b, t) for a, b in ends])
        walk_y = conditions_for(G, WALK_ROWS)
        walk_y = walk_y.repeat_interleave(cfg.interpolation_steps, dim=0) if walk_y is not None else None
        I.save_png(out / "interpolation.png", I.grid(generate(G, walk, walk_y), nrow=cfg.interpolation_steps),
                   scale=scale)
        files += [out / "grid.png", out / "samples.npz", out / "interpolation.png"]
        if n_classes:  # one row per class, the same noise in every row
            per = WALK_ROWS
            zc = torch.randn(per, z_dim, generator=gen).repeat(n_classes, 1)
            yc = torch.arange(n_classes).repeat_interleave(per)
            I.save_png(out / "classes.png", I.grid(generate(G, zc, yc), nrow=per), scale=scale)
            files.append(out / "classes.png")
        if cond.is_conditioned(G):  # a grid per input: that input varied, noise and the others fixed
            extra["inputs"] = {"columns": [[k, d or 1] for k, d in G.inputs], "grids": {}}
            for name, _ in G.inputs:
                images, per_row, record = input_grid(G, z_dim, name, cfg.seed + 4)
                I.save_png(out / f"input_{name}.png", I.grid(images, nrow=per_row), scale=scale)
                extra["inputs"]["grids"][name] = record
                files.append(out / f"input_{name}.png")
        grid_images, traversal = noise_traversal(G, z_dim, cfg.seed + 1)
        I.save_png(out / "traversal.png", I.grid(grid_images, nrow=len(TRAVERSAL_VALUES)), scale=scale)
        files.append(out / "traversal.png")
        if hasattr(G, "mapping_ws"):  # StyleGAN: w-space traversal, style mixing, truncation
            grid_images, traversal_w = noise_traversal(G, z_dim, cfg.seed + 1, space="w")
            I.save_png(out / "traversal_w.png", I.grid(grid_images, nrow=len(TRAVERSAL_VALUES)), scale=scale)
            images, per_row, mixing = style_mixing(G, z_dim, cfg.seed + 2)
            I.save_png(out / "style_mixing.png", I.grid(images, nrow=per_row), scale=scale)
            I.save_png(out / "truncation.png", I.grid(truncation_strip(G, z_dim, cfg.seed + 3),
                                                      nrow=len(TRUNCATION_STRIP)), scale=scale)
            extra["stylegan"] = {"traversal_w": traversal_w, "style_mixing": mixing,
                                 "truncation_psis": list(TRUNCATION_STRIP)}
            files += [out / "traversal_w.png", out / "style_mixing.png", out / "truncation.png"]
        files += [out / "images" / f"{i:03d}.png" for i in range(cfg.n_images)]
    write_record(out / "export.json", {"fingerprint": fp.value, "code": fp.code, "variant": variant, "step": int(ckpt["step"]),
                                       "seed": cfg.seed, "files": [str(f.relative_to(out)) for f in files],
                                       **({"traversal": traversal} if prep.info.kind == "image" else {}), **extra},
                 files)
    return json.loads((out / "export.json").read_text())


TRAVERSAL_VALUES = (-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0)  # the values one noise dimension takes, a column each
TRAVERSAL_DIMS, TRAVERSAL_BASES, TRAVERSAL_PROBES = 6, 2, 16


def _device(G: torch.nn.Module) -> torch.device:
    """Where ``G`` runs (the configured device): inputs go there, images come back to the CPU
    (``generate`` does both itself)."""
    return next(G.parameters(), torch.empty(0)).device


@torch.no_grad()
def noise_traversal(G, z_dim: int, seed: int, space: str = "z") -> tuple[torch.Tensor, dict[str, Any]]:
    """Which noise dimensions move the output most, and a grid that moves them one at a time.

    In ``space`` "z" a dimension takes the values ``TRAVERSAL_VALUES``; in "w" (a StyleGAN's
    style space) the mean of w_d plus those values times w_d's standard deviation (both over
    1,000 mapped noise vectors), fed to every layer.  Effect of dimension d: the mean absolute
    pixel difference (model range [-1, 1]) between the images at the largest and the smallest
    value over ``TRAVERSAL_PROBES`` fixed vectors (a conditional G keeps each probe's label).
    The grid: for the ``TRAVERSAL_DIMS`` dimensions of largest effect, for each of
    ``TRAVERSAL_BASES`` fixed vectors, a row with dimension d set to each value and every other
    coordinate unchanged.  Returns (the grid's images, row-major, and the record: every
    dimension's effect, the chosen ones)."""
    gen = torch.Generator().manual_seed(seed)
    values = torch.tensor(TRAVERSAL_VALUES)
    if space == "w":
        def to_w(n):
            z = torch.randn(n, z_dim, generator=gen)
            y = conditions_for(G, n)
            return G.mapping_ws(z.to(_device(G)), None if y is None else y.to(_device(G)), psi=1.0)[:, 0].cpu()
        cloud = to_w(1000)
        center, scale = cloud.mean(0), cloud.std(0)
        draw = to_w
        decode = lambda v, y: torch.cat([G.synthesis(c[:, None].expand(-1, G.num_ws, -1).to(_device(G))).cpu()  # noqa: E731
                                         for c in v.split(500)])
    else:
        center, scale = torch.zeros(z_dim), torch.ones(z_dim)
        draw = lambda n: torch.randn(n, z_dim, generator=gen)  # noqa: E731
        decode = lambda v, y: generate(G, v, y)  # noqa: E731
    dim = center.shape[0]
    probes = draw(TRAVERSAL_PROBES)
    probe_y = conditions_for(G, TRAVERSAL_PROBES)
    ends = probes.repeat(2 * dim, 1).view(2, dim, TRAVERSAL_PROBES, dim)
    for d in range(dim):
        ends[0, d, :, d] = center[d] + values[0] * scale[d]
        ends[1, d, :, d] = center[d] + values[-1] * scale[d]
    ys = probe_y.repeat(2 * dim, *([1] * (probe_y.dim() - 1))) if probe_y is not None else None
    imgs = decode(ends.reshape(-1, dim), ys).reshape(2, dim, TRAVERSAL_PROBES, -1)
    effect = (imgs[1] - imgs[0]).abs().mean((1, 2))  # (dim,)
    dims = effect.argsort(descending=True)[:min(TRAVERSAL_DIMS, dim)].tolist()
    bases = draw(TRAVERSAL_BASES)
    base_y = conditions_for(G, TRAVERSAL_BASES)
    rows, row_y = [], []
    for d in dims:
        for b in range(TRAVERSAL_BASES):
            row = bases[b].repeat(len(TRAVERSAL_VALUES), 1)
            row[:, d] = center[d] + values * scale[d]
            rows.append(row)
            if base_y is not None:
                row_y.append(base_y[b:b + 1].repeat_interleave(len(TRAVERSAL_VALUES), dim=0))
    grid = decode(torch.cat(rows), torch.cat(row_y) if row_y else None)
    unit = "" if space == "z" else " standard deviations of w_d about its mean"
    record = {"space": space, "values": list(TRAVERSAL_VALUES), "rows": "each chosen dimension x each base vector",
              "dims": dims, "effect": [round(float(e), 6) for e in effect],
              "measure": f"mean |G({space}_d={TRAVERSAL_VALUES[-1]:+g}) - G({space}_d={TRAVERSAL_VALUES[0]:+g})|{unit} "
                         f"over {TRAVERSAL_PROBES} fixed vectors, pixels in [-1, 1]"}
    return grid, record


MIXING_SOURCES = 6  # style-mixing grid: sources per side
TRUNCATION_STRIP = (0.0, 0.25, 0.5, 0.75, 1.0)


@torch.no_grad()
def style_mixing(G, z_dim: int, seed: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """The StyleGAN paper's style-mixing figure: the top row shows column sources, the left
    column row sources; cell (r, c) takes the coarse styles (the rows of ws read by the
    convolutions at 4 and 8 px) from row source r and the rest (the 8 px image output and
    everything from 16 px up) from column source c.  Returns (the images,
    row-major with a blank corner, the images per row, the record)."""
    gen = torch.Generator().manual_seed(seed)
    n, dev = MIXING_SOURCES, _device(G)
    y = conditions_for(G, 2 * n)
    ws = G.mapping_ws(torch.randn(2 * n, z_dim, generator=gen).to(dev), None if y is None else y.to(dev), psi=1.0)
    rows_w, cols_w = ws[:n], ws[n:]
    cutoff = G.rgb_rows[1] if len(G.rgb_rows) > 2 else G.num_ws // 2
    cells = [torch.full((1, *G.synthesis(cols_w[:1]).shape[1:]), -1.0), G.synthesis(cols_w).cpu()]
    for r in range(n):
        mixed = cols_w.clone()
        mixed[:, :cutoff] = rows_w[r:r + 1, :cutoff]
        cells += [G.synthesis(rows_w[r:r + 1]).cpu(), G.synthesis(mixed).cpu()]
    record = {"sources": n, "cutoff_row": int(cutoff), "num_ws": int(G.num_ws),
              "coarse": f"ws rows < {cutoff} (the 4 and 8 px convolutions) from the row source", "fine": "the rest from the column source"}
    return torch.cat(cells), n + 1, record


@torch.no_grad()
def truncation_strip(G, z_dim: int, seed: int, rows: int = 6) -> torch.Tensor:
    """A row per fixed noise vector, a column per psi of ``TRUNCATION_STRIP`` (0: the average w)."""
    gen = torch.Generator().manual_seed(seed)
    dev = _device(G)
    z = torch.randn(rows, z_dim, generator=gen).to(dev)
    y = conditions_for(G, rows)
    out = []
    for i in range(rows):
        yi = None if y is None else y[i:i + 1].to(dev)
        out.append(G.synthesis(torch.cat([G.mapping_ws(z[i:i + 1], yi, psi=p) for p in TRUNCATION_STRIP])).cpu())
    return torch.cat(out)


INPUT_STEPS = 8  # columns of an input's grid: the input from its 5th to its 95th percentile (label: every class)


@torch.no_grad()
def input_grid(G, z_dim: int, name: str, seed: int) -> tuple[torch.Tensor, int, dict[str, Any]]:
    """One input of a multi-input generator varied along each row, noise and every other input
    held at a real sample's values (``WALK_ROWS`` rows, conditions from the generator's bank).
    A continuous input of one dimension runs over ``INPUT_STEPS`` quantiles (5% to 95%) of the
    bank's values, a vector input interpolates linearly between two bank rows' vectors, the label
    takes every class.  A measured attribute (thickness, slant, ...) is measured again on the
    generated images: the record holds, per column, the requested and the mean measured value."""
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(WALK_ROWS, z_dim, generator=gen)
    base = conditions_for(G, WALK_ROWS)
    bank_col = cond.column(G, name, G.bank.cpu())
    if name == cond.LABEL:
        values = torch.arange(G.encoder.n_classes, dtype=torch.float32)[:, None]
    elif bank_col.shape[1] == 1:
        q = torch.linspace(0.05, 0.95, INPUT_STEPS, dtype=torch.float64)
        values = torch.quantile(bank_col[:, 0].double(), q).float()[:, None]
    else:
        t = torch.linspace(0, 1, INPUT_STEPS)[:, None]
        values = bank_col[0][None].lerp(bank_col[1][None], t)
    k = values.shape[0]
    zs = z.repeat_interleave(k, dim=0)
    cs = base.repeat_interleave(k, dim=0)
    cond.column(G, name, cs).copy_(values.repeat(WALK_ROWS, 1))  # a view: sets the input's columns of cs
    images = generate(G, zs, cs)
    record: dict[str, Any] = {"rows": f"{WALK_ROWS} fixed noise vectors, each with a real sample's other inputs",
                              "values": [[round(float(v), 6) for v in row] for row in values]}
    if name in ATTRIBUTES and images.shape[1] == 1:
        measured = measure_attributes(images.numpy(), [name])[name].reshape(WALK_ROWS, k)
        record["measured_mean"] = [round(float(v), 4) for v in measured.mean(0)]
        record["pearson_r"] = round(agreement(values[:, 0].repeat(WALK_ROWS).numpy(), measured.ravel()), 4)
    return images, k, record


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
