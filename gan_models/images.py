"""Pictures: sample grids, PNG files, scatter plots and training curves (all written atomically)."""

from __future__ import annotations

import functools
import io
import math
import threading
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from .files import atomic_write_bytes


def to_uint8(x: torch.Tensor) -> np.ndarray:
    """Model range [-1, 1] (N, C, H, W) -> uint8 (N, H, W, C)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile (N, C, H, W) images into one uint8 (H', W', C) array with a ``pad``-pixel border."""
    imgs = to_uint8(x)
    n, h, w, c = imgs.shape
    nrow = nrow or int(math.ceil(math.sqrt(n)))
    ncol = int(math.ceil(n / nrow))
    out = np.zeros((pad + ncol * (h + pad), pad + nrow * (w + pad), c), dtype=np.uint8)
    for i in range(n):
        r, q = divmod(i, nrow)
        out[pad + r * (h + pad): pad + r * (h + pad) + h, pad + q * (w + pad): pad + q * (w + pad) + w] = imgs[i]
    return out


def png_bytes(img: np.ndarray, scale: int = 1) -> bytes:
    from PIL import Image

    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    im = Image.fromarray(img)
    if scale > 1:
        im = im.resize((im.width * scale, im.height * scale), Image.Resampling.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def save_png(path: str | Path, img: np.ndarray, scale: int = 1) -> None:
    atomic_write_bytes(path, png_bytes(img, scale))


# pyplot is not thread-safe (variants run in threads): one figure at a time.
_PLOT_LOCK = threading.RLock()


def _locked(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with _PLOT_LOCK:
            return fn(*args, **kwargs)
    return wrapper


def _figure_bytes(fig) -> bytes:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


@_locked
def scatter_png(path: str | Path, real: np.ndarray, fake: np.ndarray, centers: np.ndarray | None,
                title: str) -> None:
    """Generated points over the real data (2D mixtures)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(real[:, 0], real[:, 1], s=2, c="tab:blue", alpha=0.3, label="real")
    ax.scatter(fake[:, 0], fake[:, 1], s=2, c="tab:red", alpha=0.5, label="generated")
    if centers is not None:
        ax.scatter(centers[:, 0], centers[:, 1], marker="x", c="k", s=30, label="modes")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", markerscale=4)
    ax.set_title(title)
    atomic_write_bytes(path, _figure_bytes(fig))


@_locked
def curves_png(path: str | Path, history: Sequence[dict[str, float]], title: str) -> None:
    """Training dynamics: losses, D(x) vs D(G(z)), gradient norms, sample diversity."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [h["step"] for h in history]
    panels = [("losses", ["loss/D", "loss/G"]), ("discriminator outputs", ["D/real", "D/fake"]),
              ("gradient norms (log)", ["grad_norm/D", "grad_norm/G"]),
              ("diversity of samples / real (0 = collapse)", ["diversity/fake_over_real"])]
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
    for ax, (name, keys) in zip(axes.flat, panels):
        for k in keys:
            ys = [h.get(k, math.nan) for h in history]
            ax.plot(steps, ys, label=k, lw=1)
        if name.startswith("gradient"):
            ax.set_yscale("log")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))


@_locked
def score_png(path: str | Path, steps: Sequence[int], scores: Sequence[float], best_step: int,
              metric: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(steps, scores, "o-", lw=1)
    ax.axvline(best_step, color="tab:green", ls="--", label=f"selected: step {best_step}")
    ax.set_xlabel("step")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.legend()
    atomic_write_bytes(path, _figure_bytes(fig))


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between noise vectors a and b (D,) at fractions t (T,) -> (T, D)."""
    an, bn = a / a.norm(), b / b.norm()
    omega = torch.arccos((an * bn).sum().clamp(-1 + 1e-7, 1 - 1e-7))
    so = torch.sin(omega)
    t = t[:, None]
    return (torch.sin((1 - t) * omega) / so) * a + (torch.sin(t * omega) / so) * b


@_locked
def series_png(path: str | Path, series: dict[str, tuple[Sequence[float], Sequence[float]]], xlabel: str,
               ylabel: str, title: str, log_y: bool = False) -> None:
    """One line per named series of (x, y): e.g. every variant's held-out FID over training steps."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, "o-", lw=1, ms=3, label=name)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize=8)
    atomic_write_bytes(path, _figure_bytes(fig))


@_locked
def strip_png(path: str | Path, panels: dict[str, dict[str, tuple[Sequence[float], tuple[float, float]]]],
              title: str) -> None:
    """Per metric (a panel), every seed's value of every variant as a dot, with the mean and its
    confidence interval beside: ``panels[metric][variant] = (values, (ci_low, ci_high))``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(3.6 * len(panels), 3.6), squeeze=False)
    for ax, (metric, groups) in zip(axes[0], panels.items()):
        for i, (variant, (values, (lo, hi))) in enumerate(groups.items()):
            jitter = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + jitter, values, s=18, alpha=0.8, zorder=3)
            mean = float(np.mean(values))
            ax.errorbar(i + 0.3, mean, yerr=[[mean - lo], [hi - mean]] if np.isfinite(lo) else None, fmt="D",
                        color="k", ms=4, capsize=3, zorder=4)
        ax.set_xticks(range(len(groups)), list(groups), rotation=20, fontsize=8)
        ax.set_title(metric, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write_bytes(path, _figure_bytes(fig))


@_locked
def band_png(path: str | Path, bands: dict[str, dict[str, Sequence[float]]], ylabel: str, title: str,
             log_y: bool = False) -> None:
    """Per variant a metric over training steps: the mean over seeds as a line, the interval as a
    band (``bands[variant] = {"step", "mean", "low", "high"}``)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, b in bands.items():
        line, = ax.plot(b["step"], b["mean"], lw=1.5, label=name)
        ax.fill_between(b["step"], b["low"], b["high"], color=line.get_color(), alpha=0.2, lw=0)
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    atomic_write_bytes(path, _figure_bytes(fig))
