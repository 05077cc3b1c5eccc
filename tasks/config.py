"""params.yaml: parsed once, at the boundary, into frozen typed objects.

Unknown keys, wrong types and out-of-range values raise ``ConfigError`` with one line per
problem, naming the key (``train.batch_size``) and what is allowed.  Variant specs are resolved
and their networks built here too, so a bad architecture option fails before any work.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
import os
import sys
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from gan_models import variants as V
from gan_models.data import DATASETS
from gan_models.data.attributes import ATTRIBUTES


class ConfigError(ValueError):
    """params.yaml or a command-line override is wrong; the message says what and how to fix it."""


MAX_SEEDS = 16  # a study's seeds: the exact paired test enumerates 2^n sign patterns per pair and score


@dataclass(frozen=True)
class Cell:
    """One training run of a pipeline: a variant and the seed of its weights, data order and noise.
    Its files live under its ``name``: the variant's name, or ``<variant>/seed_<s>`` in a study."""

    variant: str
    seed: int
    study: bool = False

    @property
    def name(self) -> str:
        return f"{self.variant}/seed_{self.seed}" if self.study else self.variant


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _(default: Any = ..., description: str = "", **constraints: Any) -> Any:
    """A setting: its default, what it means (the settings reference is generated from these)."""
    return Field(default, description=description, **constraints)


class PrepareConfig(_Section):
    """Stage 1: the data set, its split, the feature classifier and the features for image metrics."""

    dataset: str = _("mnist_subset", "a name from `python -m flows datasets`")
    root: str | None = _(None, "folder of a torchvision data set or of your images; null: not needed")
    download: bool = _(False, "torchvision only: download into root when missing (needs internet)")
    image_size: int | None = _(None, "resize images to this square size; null: native", ge=4, le=1024)
    channels: Literal[1, 3] | None = _(None, "folder data: 1 grey, 3 RGB; null: detect")
    n_points: int = _(20000, "2D mixtures: samples drawn; stacked_mnist: stacked images made", ge=100)
    heldout_fraction: float = _(0.1, "share of samples held out for selection", gt=0.0, lt=1.0)
    max_samples: int | None = _(None, "keep only the first N (after shuffling); null: all", ge=2)
    classifier_samples: int = _(36000, "training budget of each feature classifier (labelled images), in samples "
                                       "seen: as many epochs as fit, the last one partial (36,000: 8 epochs of the "
                                       "default data's 4,500 training images)", ge=64)
    extractor: str = _("auto", "features for image metrics: classifier, inception, pixels or a plugin's; auto: "
                               "inception for RGB images when its weights file is there (prepare.inception_weights), "
                               "else the classifier for labelled data, else pixels")
    inception_weights: str | None = _(None, "path of pt_inception-2015-12-05-6726825d.pth; null: torch hub's cache")
    inception_resize: Literal["bilinear", "clean"] = _(
        "bilinear", "how images reach Inception's 299 x 299: bilinear as pytorch-fid (comparable with published "
                    "FIDs), or clean: antialiased bicubic as clean-fid recommends (Parmar et al. 2022)")
    workers: int | None = _(None, "processes decoding a folder's images; null: one per core this process may use, at most 8", ge=1)
    inception_url: str | None = _(None, "download the Inception weights from here when missing (needs internet)")
    inputs: str | None = _(None, "folder only: CSV (file,name,...) or .npy of per-image inputs to condition on")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, v: str) -> str:
        if v not in DATASETS:
            raise ValueError(f"unknown data set {v!r}; known: {', '.join(DATASETS.names())}")
        return v

    @field_validator("extractor")
    @classmethod
    def _known_extractor(cls, v: str) -> str:
        from gan_models.features import EXTRACTORS

        if v != "auto" and v not in EXTRACTORS:
            raise ValueError(f"unknown feature extractor {v!r}; known: auto, {', '.join(EXTRACTORS.names())}")
        return v


class TrainConfig(_Section):
    """Stage 2: how every variant trains; ``variants`` names them."""

    steps: int = _(2000, "generator updates per variant (a variant may override: train.variants.<name>.steps)", ge=1)
    batch_size: int = _(64, "D's inputs per step: real and fake samples (PacGAN: packs of tricks.pack)", ge=1)
    checkpoint_every: int = _(500, "steps between checkpoints (the last step is always saved)", ge=1)
    log_every: int = _(10, "steps between logged statistics (D(x), D(G(z)), gradient norms, ...)", ge=1)
    parallel: int = _(1, "variants trained at once by `flows run` (CPU threads are shared)", ge=1)
    threads: int | None = _(None, "CPU threads per stage; null: cores // parallel", ge=1)
    amp: Literal["off", "bf16", "fp16"] = _(
        "off", "mixed precision for training: bf16 or fp16 (with a gradient scaler); a step whose gradients are not "
               "finite is skipped and counted (amp/skipped_steps, updates of G or D); metrics are always computed in float32")
    variants: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {"mlp": {}, "dcgan": {}},
        description="the variants to train, by name: a preset's name (`python -m flows variants`), or any name "
                    "with `preset:`; the value overrides parts of the preset (train.variants.<name>.KEY)")

    @field_validator("amp", mode="before")
    @classmethod
    def _off(cls, v: Any) -> Any:
        return "off" if v is False else v  # YAML reads a bare `off` as false

    @field_validator("variants", mode="before")
    @classmethod
    def _none_is_empty(cls, v: Any) -> Any:
        if isinstance(v, dict):
            return {k: ({} if s is None else s) for k, s in v.items()}
        return v


class SelectConfig(_Section):
    """Stage 3: the best checkpoint of each variant by a held-out score."""

    n_samples: int = _(1000, "generated samples per candidate checkpoint", ge=10)
    metric: Literal["auto", "fid", "modes", "l1", "ssim", "psnr"] = _(
        "auto", "auto: fid for images, modes for 2D points; translation: l1 to the ground truth when held-out "
                "inputs have it (paired data, the embedded unpaired set), else fid to the target domain; l1 / ssim / "
                "psnr need that ground truth")
    seed: int = _(1234, "noise seed, the same for every candidate")


class DiversityConfig(_Section):
    """Mean pairwise perceptual distance among samples, generated and real (gan_models.metrics.diversity)."""

    net: Literal["auto", "classifier", "alex", "vgg", "none"] = _(
        "auto", "auto: clfpips (the classifier, uncalibrated) when the data has a classifier, else none; alex / vgg: "
                "LPIPS with torchvision's backbone from `weights` or torch hub's checkpoints folder")
    weights: str | None = _(None, "alex / vgg: path of alexnet-owt-7be5be79.pth / vgg16-397923af.pth")
    n_pairs: int = _(2000, "random pairs (per class too, for conditional variants)", ge=10)


class EvaluateConfig(_Section):
    """Stage 4: the final metrics of each variant's selected checkpoint."""

    n_samples: int = _(5000, "generated samples for the final metrics", ge=10)
    is_splits: int = _(10, "Inception-score splits", ge=1)
    seed: int = _(4321, "noise seed of the samples")
    metrics: list[str] = _(["kid", "precision_recall", "density_coverage"],
                           "feature-set metrics beside FID/IS (`python -m flows variants` lists them; plugins add "
                           "more)")
    diversity: DiversityConfig = _(DiversityConfig(), "the diversity score's distance (evaluate.diversity.*)")

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, v: list[str]) -> list[str]:
        from gan_models.metrics import METRICS

        bad = [m for m in v if m not in METRICS]
        if bad:
            raise ValueError(f"unknown metric {bad[0]!r}; known: {', '.join(METRICS.names())}")
        if len(set(v)) != len(v):
            raise ValueError(f"a metric is named twice: {v}")
        return v


class ExportConfig(_Section):
    """Stage 5: sample grids, single images, arrays and latent walks."""

    grid_size: int = _(64, "images in grid.png (fixed noise)", ge=1)
    n_images: int = _(16, "single PNGs", ge=0)
    n_array: int = _(1000, "samples in samples.npz", ge=1)
    interpolation_steps: int = _(10, "frames of the latent walk", ge=2)
    seed: int = _(2024, "noise seed of the exported samples")


class TrackingConfig(_Section):
    """MLflow: where `flows run` logs, and the model registry."""

    experiment: str = _("gan-pipeline", "MLflow experiment name")
    uri: str | None = _(None, "null: $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db")
    enabled: bool = _(True, "log to MLflow from `flows run`")
    system_metrics: bool = _(True, "log CPU, memory (and GPU) use during training as system/* metrics")
    system_metrics_interval: float = _(10.0, "seconds between system-metrics samples", gt=0)
    registered_model: str | None = _(
        "gan-generator", "the best generator of every pipeline run is registered under this name, with the alias "
                         "`champion` moved to it when it beats the champion on the selection metric; null: no registry")


class Params(_Section):
    """params.yaml: one section per stage, tracking, and the plugins to load."""

    seed: int = _(0, "seeds the data split and the feature classifiers, and (without seeds) the weights, data order and "
                     "noise of every variant")
    seeds: list[int] | None = _(None, "a study: every variant trained once per seed, each (variant, seed) a cell with its "
                                      "own files; the comparison reports means, intervals and paired tests over them; "
                                      "null: one run per variant, seeded by seed")
    device: str = _("auto", "where every stage runs its networks: cpu, cuda, cuda:N, or auto (cuda when available); "
                            "arrays written to disk stay CPU numpy")
    prepare: PrepareConfig = _(PrepareConfig(), "stage 1")
    train: TrainConfig = _(TrainConfig(), "stage 2")
    select: SelectConfig = _(SelectConfig(), "stage 3")
    evaluate: EvaluateConfig = _(EvaluateConfig(), "stage 4")
    export: ExportConfig = _(ExportConfig(), "stage 5")
    tracking: TrackingConfig = _(TrackingConfig(), "MLflow")
    plugins: list[str] = _([], "modules that register your own components (gan_models.plugins); installed packages "
                               "with a `gan_pipeline.plugins` entry point are loaded without being listed")
    # The folder `plugins:` modules are imported from (the params file's), kept so that a worker
    # process, which gets these settings by pickle, loads the same plugins (``ensure_plugins``).
    _plugin_folder: str | None = PrivateAttr(None)
    # Every variant's spec, resolved once (``variant_spec``): train.variants holds what the user
    # wrote, which DVC, the stage fingerprints and MLflow record as written.
    _specs: dict[str, V.VariantSpec] = PrivateAttr(default_factory=dict)

    @field_validator("seeds", mode="before")
    @classmethod
    def _study_seeds(cls, v: Any) -> Any:
        if v is None:
            return v
        if not isinstance(v, list) or not v:
            raise ValueError(f"seeds must be a non-empty list of integers, e.g. [0, 1, 2] (null: no study), got {v!r}")
        bad = [s for s in v if isinstance(s, bool) or not isinstance(s, int) or s < 0]
        if bad:
            raise ValueError(f"seeds must be integers >= 0, got {bad[0]!r} in {v!r}")
        if len(v) < 2:
            raise ValueError(f"a study needs at least 2 seeds for an interval and a paired test, got {v!r}; "
                             "for a single run set seed: N and leave seeds out")
        if len(set(v)) != len(v):
            raise ValueError(f"seeds must be distinct (a seed twice would train the same cell twice), got {v!r}")
        if len(v) > MAX_SEEDS:
            raise ValueError(f"at most {MAX_SEEDS} seeds (the exact paired test enumerates 2^n sign patterns), "
                             f"got {len(v)}")
        return v

    @property
    def variant_names(self) -> list[str]:
        return list(self.train.variants)

    @property
    def cells(self) -> list["Cell"]:
        """Every (variant, seed) this run trains, variants first: one per variant without
        ``seeds``, else one per variant and seed."""
        if self.seeds is None:
            return [Cell(v, self.seed) for v in self.variant_names]
        return [Cell(v, s, study=True) for v in self.variant_names for s in self.seeds]

    def cell(self, name: str) -> "Cell":
        """The cell of ``name`` (``<variant>`` or ``<variant>/seed_<s>``)."""
        for c in self.cells:
            if c.name == name:
                return c
        raise ConfigError(f"{name!r} is not a cell of these settings; cells: "
                          f"{', '.join(c.name for c in self.cells) or 'none'}")

    def variant_spec(self, name: str) -> V.VariantSpec:
        """The resolved spec of a variant: its preset with its overrides merged in."""
        if name not in self._specs:
            if name not in self.train.variants:
                raise ConfigError(f"variant {name!r} is not in train.variants of params.yaml; "
                                  f"configured: {', '.join(self.variant_names) or 'none'}")
            overrides = {k: v for k, v in self.train.variants[name].items() if k != "steps"}
            self._specs[name] = V.resolve(name, overrides)
        return self._specs[name]

    def variant_steps(self, name: str) -> int:
        return int(self.train.variants[name].get("steps", self.train.steps))

    def to_dict(self) -> dict[str, Any]:
        return json.loads(self.model_dump_json())


# Settings that moved, and where to: a file that still uses the old key gets one message naming the
# new one (exit 2) rather than "unknown key".
MOVED = {"train.device": ("device", "the device now places every stage, not only training"),
         "prepare.classifier_epochs": ("prepare.classifier_samples",
                                       "the classifiers' budget is in samples seen: epochs x training images")}


def _moved(doc: dict[str, Any]) -> None:
    for old, (new, why) in MOVED.items():
        section, _, key = old.partition(".")
        if isinstance(doc.get(section), dict) and key in doc[section]:
            raise ConfigError(f"{old} has moved: set {new} instead ({why})")


def _format_validation(e: ValidationError) -> str:
    lines = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err["loc"])
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            section = err["loc"][:-1]
            model: Any = Params
            for part in section:
                model = model.model_fields[part].annotation
            allowed = ", ".join(model.model_fields) if hasattr(model, "model_fields") else "?"
            msg = f"unknown key; allowed here: {allowed}"
        elif "input" in err and err["type"] != "missing":
            msg = f"{msg} (got {err['input']!r})"
        lines.append(f"  {loc or '<top level>'}: {msg}")
    return "\n".join(lines)


def parse_value(text: str) -> Any:
    """A command-line value in YAML syntax: 3, 0.5, true, null, [1, 2], {a: 1}, text."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` overrides to a params document (a copy)."""
    doc = copy.deepcopy(doc)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.steps=500")
        key, _, raw = item.partition("=")
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"--set {item!r}: empty key part")
        node = doc
        for p in parts[:-1]:
            if node.get(p) is None:  # absent, or written as `mlp:` (null, i.e. no overrides)
                node[p] = {}
            nxt = node[p]
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {item!r}: {p!r} is not a section")
            node = nxt
        node[parts[-1]] = parse_value(raw)
    return doc


def load_params(path: str | Path = "params.yaml", overrides: list[str] | None = None,
                check_variants: bool = True) -> Params:
    """Read, override and validate; raises ConfigError naming every problem."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"params file {str(path)!r} not found; run from the project folder or pass --params FILE")
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(doc, dict):
        raise ConfigError(f"{path} must hold a mapping of sections (prepare, train, ...), got {type(doc).__name__}")
    doc = apply_overrides(doc, overrides or [])
    _moved(doc)
    import_plugins(doc.get("plugins"), path)
    try:
        params = Params.model_validate(doc)
        params._plugin_folder = str(Path(path).resolve().parent)
    except ValidationError as e:
        raise ConfigError(f"invalid settings in {path}:\n{_format_validation(e)}") from None
    check_inputs(params)
    if check_variants:
        check_variant_specs(params)
    return params


def import_plugins(names: Any, path: Path) -> None:
    """Import the plugins params.yaml names (and installed entry-point plugins) before anything
    is validated: they may define the data set, variants and metrics the file refers to.  Modules
    next to params.yaml are importable."""
    if names is None:
        names = []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"{path}: plugins must be a list of module names, got {names!r}")
    _import_plugins(names, str(Path(path).resolve().parent), str(path))


def _import_plugins(names: list[str], folder: str, where: str) -> None:
    # Appended, not prepended: a file next to params.yaml must not shadow an installed module.
    if names and folder not in sys.path:
        sys.path.append(folder)
    from gan_models.plugins import PluginError, load_plugins

    try:
        load_plugins(names)
    except PluginError as e:
        raise ConfigError(f"{where}: {e}") from None


def ensure_plugins(params: Params) -> None:
    """Load, in this process, the plugins the settings were loaded with: a worker process
    (``train.parallel`` > 1, a Dask worker) receives the settings but has imported no plugin, so
    its registries would lack the plugin's components and its stage fingerprints the plugin's code.
    Loading is idempotent: a process that loaded them already does nothing."""
    _import_plugins(list(params.plugins), params._plugin_folder or os.getcwd(), "plugins")


def _check_images(root: Path) -> int:
    """Every image under ``root`` opens (header and structure checked by PIL); returns the count."""
    from PIL import Image

    from gan_models.data.folder import IMAGE_SUFFIXES, image_files

    files = image_files(root)
    if not files:
        raise ConfigError(f"prepare.root: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) found under {str(root)!r}")
    for p in files:
        try:
            with Image.open(p) as im:
                im.verify()
        except Exception as e:
            raise ConfigError(f"prepare.root: cannot read image {str(p)!r} ({type(e).__name__}: {e}); "
                              "remove or fix the file") from None
    return len(files)


def _check_fp16(name: str, spec: V.VariantSpec) -> None:
    """Penalties that take gradients inside the loss (R1, WGAN-GP, unrolled D) do it unscaled, and
    fp16 can underflow those gradients to zero: refused, with what to use instead."""
    t = spec.tricks
    found = [what for what, on in (("tricks.r1", t.r1 > 0), ("tricks.unrolled_steps", t.unrolled_steps > 0),
                                   ("loss wgan_gp", spec.loss.name == "wgan_gp"
                                    and float(spec.loss.options.get("gp_weight", 10.0)) > 0)) if on]
    if found:
        raise ConfigError(f"train.amp=fp16 with variant {name!r}'s {', '.join(found)}: its gradients inside the loss "
                          "are not scaled and fp16 can underflow them to zero; set train.amp: bf16 (float32's "
                          "range, no scaling needed) or off")


def check_inputs(params: Params) -> None:
    """What can be known before any work: the device exists, data folders and weight files exist,
    the training split is at least one batch."""
    _check_device(params.device)
    if params.train.amp == "fp16":
        for name in params.variant_names:
            _check_fp16(name, params.variant_spec(name))
    div = params.evaluate.diversity
    if div.net in ("alex", "vgg"):
        from gan_models.features.perceptual import BACKBONES, weights_path

        w = weights_path(BACKBONES[div.net][1], div.weights)
        if not w.is_file():
            raise ConfigError(f"evaluate.diversity.net: {div.net} needs torchvision's {w.name} at {w} (nothing is "
                              "downloaded); put it there, set evaluate.diversity.weights to its path, or use "
                              "net: classifier")
    prep = params.prepare
    if prep.dataset in ("paired_folder", "unpaired_folder"):
        from gan_models.data import DataError, translation_folder_files

        try:
            translation_folder_files(prep.root, prep.dataset.split("_")[0])  # layout, partners, sizes
        except DataError as e:
            raise ConfigError(f"prepare.root: {e}") from None
        _check_images(Path(prep.root))  # every image opens
    if prep.dataset == "folder" or prep.dataset in ("mnist", "fashion_mnist", "cifar10"):
        if prep.root is None:
            raise ConfigError(f"prepare.root is required for prepare.dataset={prep.dataset}: the folder of "
                              + ("your images" if prep.dataset == "folder" else "the torchvision files"))
        root = Path(prep.root)
        if not root.is_dir() and not (prep.download and prep.dataset != "folder"):
            raise ConfigError(f"prepare.root: {str(root)!r} is not a folder; point it at "
                              + ("a folder of images" if prep.dataset == "folder" else
                                 "the torchvision files, or set prepare.download: true when online"))
    facts = DATASETS.entry(prep.dataset).facts
    n = prep.n_points if facts is not None and facts.n_samples == "n_points" else (
        facts.n_samples if facts is not None and isinstance(facts.n_samples, int) else None)
    if prep.dataset == "folder":
        n = _check_images(Path(prep.root))
    if n is not None:
        if prep.max_samples is not None:
            n = min(n, prep.max_samples)
        n_train = (n - max(1, int(round(n * prep.heldout_fraction)))) // facts.train_parts
        if n_train < params.train.batch_size:
            raise ConfigError(f"train.batch_size: {params.train.batch_size} is more than the {n_train} training "
                              f"samples of {prep.dataset}; lower train.batch_size (or raise prepare.max_samples)")


def _check_device(name: str) -> None:
    import torch

    if name == "auto":
        return
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: {name!r} is not a device; use cpu, auto, cuda or cuda:N") from None
    if dev.type == "cpu":
        return
    if dev.type != "cuda":
        raise ConfigError(f"device: {name!r} is not supported; use cpu, auto, cuda or cuda:N")
    if not torch.cuda.is_available():
        raise ConfigError(f"device: {name!r} but this machine has no usable CUDA device; use cpu, or auto "
                          "(CUDA when available)")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ConfigError(f"device: {name!r} but this machine has {torch.cuda.device_count()} CUDA "
                          f"device(s); use cuda:0 .. cuda:{torch.cuda.device_count() - 1}, or auto")


def check_variant_specs(params: Params) -> None:
    """Resolve every variant and build its networks for the configured data shape (on the CPU)."""
    if not params.train.variants:
        raise ConfigError("train.variants is empty: name at least one variant (python -m flows variants lists them)")
    data = expected_data_info(params.prepare)
    problems = []
    for name, overrides in params.train.variants.items():
        if not isinstance(overrides, dict):
            problems.append(f"  train.variants.{name}: must be a mapping of overrides (or empty), got {overrides!r}")
            continue
        steps = overrides.get("steps")
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            problems.append(f"  train.variants.{name}.steps: must be an integer >= 1, got {steps!r}")
        try:
            spec = params.variant_spec(name)
            if data is not None:
                V.build(spec, data)
        except (ValueError, ConfigError) as e:
            problems.append(f"  train.variants.{name}: {e}")
    if problems:
        raise ConfigError("invalid variants in train.variants:\n" + "\n".join(problems))


def expected_data_info(prep: PrepareConfig) -> V.DataInfo | None:
    """The DataInfo the prepare stage will produce, when the data set's registered facts (and
    prepare.image_size / prepare.channels) tell it up front; None otherwise."""
    facts = DATASETS.entry(prep.dataset).facts
    if facts is None or facts.n_classes is None or prep.inputs is not None:
        return None  # not declared, or a folder's own per-image inputs: known once prepare has read them
    if facts.kind == "points":
        return V.DataInfo("points", tuple(facts.shape), facts.n_classes)
    shape = facts.shape
    if shape is None:  # a folder: known from the files unless size and channels are set
        if prep.image_size is None or prep.channels is None:
            return None
        shape = (prep.channels, prep.image_size, prep.image_size)
    if prep.image_size is not None:
        shape = (shape[0], prep.image_size, prep.image_size)
    task = facts.translation
    # prepare measures these on grey images (gan_models.data.attributes) for multi-input conditioning
    measured = () if task or shape[0] != 1 else tuple((n, 1) for n in ATTRIBUTES.names())
    return V.DataInfo("image", tuple(shape), facts.n_classes, translation=task, source_shape=tuple(shape) if task else None,
                      inputs=measured)
