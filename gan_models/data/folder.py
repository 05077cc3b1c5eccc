"""Your own images: a folder (class sub-folders give labels; a CSV or .npy of per-image inputs),
and translation folders (pix2pix's A/ and B/, CycleGAN's trainA/ and trainB/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..mapped import UnreadableImage, decode_images, scan_images
from .base import DATASETS, DataError, DataFacts, RawData

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def load_folder(root: str | None = None, image_size: int | None = None, channels: int | None = None,
                inputs: str | None = None, workers: int = 1, scratch: str | None = None, **_: Any) -> RawData:
    """Images under ``root``; class sub-folders (root/cat/*.png) give labels, loose files none.
    ``inputs``: per-image values to condition on (``read_inputs``: a CSV or a .npy).  ``workers``
    processes decode the images; with ``scratch`` (a folder) into a memory-mapped array there.

    All images are converted to ``channels`` (1 = grey, 3 = RGB; default: grey when every image
    is grey) and resized to ``image_size`` (default: the size of the first image; all must match).
    """
    if root is None:
        raise DataError("prepare.root is required for the folder data set: the folder of your images")
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"prepare.root {str(base)!r} is not a folder; point prepare.root at a folder of images")
    files = image_files(base)
    if not files:
        raise DataError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {str(base)!r}")
    parts = [p.relative_to(base).parts for p in files]
    class_names = sorted({q[0] for q in parts if len(q) > 1})
    labelled = class_names and all(len(q) > 1 for q in parts)
    x = _read_images(files, channels, image_size, workers, scratch)
    if labelled:
        index = {c: i for i, c in enumerate(class_names)}
        y = np.array([index[q[0]] for q in parts], dtype=np.int64)
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


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


GREY_MODES = ("L", "1", "I;16", "I")  # images read as grey when prepare.channels is not set
PER_WORKER = 500  # fewer images than this per worker: decoded in this process (starting workers costs more)


def _read_images(files: list[Path], channels: int | None, image_size: int | None, workers: int = 1,
                 scratch: str | Path | None = None, desc: str = "reading images") -> np.ndarray:
    """uint8 (N, C, S, S): every file converted to ``channels`` (None: grey when all are grey) and
    resized to ``image_size`` (None: the first image's size, which must be square).

    Decoded by ``workers`` processes (at least ``PER_WORKER`` images each) straight into the
    returned array, with no list of decoded images: with ``scratch`` a memory-mapped
    ``images.npy`` in that folder (the array may be larger than memory), else in memory.  The
    same bytes whatever the number of workers.  An unreadable file raises DataError naming it."""
    from ..progress import progress

    paths = [str(p) for p in files]
    # Worker processes write into a file they map; an array in this process's memory they cannot
    # reach, so without ``scratch`` the images are decoded here.
    workers = max(1, min(workers, len(paths) // PER_WORKER)) if scratch is not None else 1
    chunks = [(s, paths[s:s + max(PER_WORKER, -(-len(paths) // (4 * workers)))])
              for s in range(0, len(paths), max(PER_WORKER, -(-len(paths) // (4 * workers))))]
    pool = None
    if workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the process may run other threads (Prefect's), whose locks a fork would copy
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        scans = (pool.map(scan_images, [c for _, c in chunks]) if pool else map(scan_images, [c for _, c in chunks]))
        scans = list(scans)
        modes = [m for ms, _ in scans for m in ms]
        if channels is None:
            channels = 1 if all(m in GREY_MODES for m in modes) else 3
        if channels not in (1, 3):
            raise DataError(f"prepare.channels must be 1 or 3, got {channels}")
        if image_size is None:
            w, h = scans[0][1]
            if w != h:
                raise DataError(f"{files[0]} is {w}x{h}: set prepare.image_size to resize to a square size")
            image_size = w
        shape = (len(paths), channels, image_size, image_size)
        if scratch is not None:
            target = str(Path(scratch) / "images.npy")
            out = np.lib.format.open_memmap(target, mode="w+", dtype=np.uint8, shape=shape)
            out.flush()
        else:
            target = out = np.empty(shape, dtype=np.uint8)
        with progress(len(paths), desc, "img") as bar:
            if pool is None:
                for s, c in chunks:
                    decode_images(c, s, out, channels, image_size)
                    bar.update(len(c))
            else:
                futures = {pool.submit(decode_images, c, s, target, channels, image_size): len(c) for s, c in chunks}
                from concurrent.futures import as_completed

                for f in as_completed(futures):
                    f.result()
                    bar.update(futures[f])
    except UnreadableImage as e:  # raised in a worker or here
        raise DataError(str(e)) from None
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return np.load(target, mmap_mode="c") if scratch is not None else out


def translation_folder_files(root: str | Path | None, task: str) -> dict[str, list[Path]]:
    """The image files of a translation folder, checked: ``A``/``B`` for a paired folder (pix2pix's
    convention: A/ inputs and B/ targets with files of the same names, partners of the same size),
    ``trainA``/``trainB`` and optionally ``testA``/``testB`` for an unpaired one (CycleGAN's).
    Raises DataError naming the path and the fix."""
    if root is None:
        raise DataError(f"prepare.root is required for the {task}_folder data set: the folder holding "
                        + ("A/ and B/" if task == "paired" else "trainA/ and trainB/"))
    base = Path(root)
    if not base.is_dir():
        raise DataError(f"prepare.root {str(base)!r} is not a folder")

    def domain(name: str, required: bool = True) -> list[Path] | None:
        d = base / name
        if not d.is_dir():
            if required:
                layout = "A/ (inputs) and B/ (targets)" if task == "paired" else "trainA/ and trainB/ (and optionally testA/, testB/)"
                raise DataError(f"{d} is missing: a {task} translation folder holds {layout}")
            return None
        files = image_files(d)
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
                        "set prepare.image_size to resize both to one size")
    return arrays


def load_paired_folder(root: str | None = None, image_size: int | None = None, channels: int | None = None,
                       **_: Any) -> RawData:
    """A paired translation folder: ``root/A/NAME`` (input) and ``root/B/NAME`` (its target)."""
    f = translation_folder_files(root, "paired")
    a, b = _domains([f["A"], f["B"]], channels, image_size)
    unl = np.full(len(b), -1, dtype=np.int64)
    return RawData(b, unl, "image", translation="paired", source=a, source_y=unl.copy(), aligned=True,
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
        held = RawData(arrays["testB"], unl(len(arrays["testB"])), "image", translation="unpaired", source=arrays["testA"],
                       source_y=unl(len(arrays["testA"])))
    return RawData(arrays["trainB"], unl(len(arrays["trainB"])), "image", translation="unpaired", source=arrays["trainA"],
                   source_y=unl(len(arrays["trainA"])), held=held,
                   extra={"transform": f"unpaired domains {root}/trainA -> {root}/trainB"})



DATASETS.register("folder", load_folder, "a folder of your images (class sub-folders give labels)",
                  facts=DataFacts("image"))
DATASETS.register("paired_folder", load_paired_folder, "paired translation from your folder: A/ inputs, B/ targets "
                  "of the same names (pix2pix)", facts=DataFacts("image", translation="paired"))
DATASETS.register("unpaired_folder", load_unpaired_folder, "unpaired translation from your folder: trainA/, "
                  "trainB/ [, testA/, testB/] (CycleGAN)", facts=DataFacts("image", translation="unpaired"))
