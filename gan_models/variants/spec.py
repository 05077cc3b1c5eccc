"""A variant's settings, resolved once into a typed, frozen ``VariantSpec``.

A spec is written as a mapping, in a preset or under ``train.variants.<name>`` of params.yaml::

    {"generator": {"arch": "dcgan", "width": 64}, "discriminator": {"arch": "dcgan", "width": 64},
     "loss": {"name": "bce"}, "z_dim": 100, "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4,
     "betas": [0.5, 0.999]}

``resolve(name, overrides)`` merges a user's overrides into the preset they name (``preset:``,
else the variant's own name): changing a component's ``arch``/``name`` replaces that component's
options, otherwise options merge.  The result is validated here, once: an unknown key, an unknown
component or a bad value raises ValueError naming the key and what is allowed.
``VariantSpec.to_dict()`` gives the mapping back, as checkpoints, MLflow and ``flows check``
record it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..losses import LOSSES, Tricks
from ..networks import DISCRIMINATORS, GENERATORS, TRANSLATORS
from ..registry import Registry, call_with_options

# The settings of any variant (train.variants.<name>.KEY), with what each means (`flows variants`
# and the settings reference list them from here).
TOP_LEVEL_KEYS = {
    "generator": "generator architecture and its options: {arch: NAME, ...}",
    "discriminator": "discriminator architecture and its options: {arch: NAME, ...}",
    "loss": "adversarial loss and its options: {name: NAME, ...}",
    "tricks": "loss tricks: {" + ", ".join(Tricks.__dataclass_fields__) + "}",
    "conditioning": "none, input (cGAN: G and D get the label), auxiliary (ACGAN: D classifies), or several inputs "
                    "{inputs: [label, thickness, ...], embed: 16}: a branch per input in G fused with the noise, "
                    "a projection D (Miyato & Koyama 2018)",
    "ema": "decay of an exponential moving average of G's weights used for sampling (0 = off)",
    "ema_rampup": "EMA warm-up: the EMA's half-life (in steps) is ema_rampup x step until it reaches that of "
                  "`ema` (StyleGAN's ema_rampup, e.g. 0.05; 0 = the fixed decay from step 0)",
    "lr_decay": "share of the steps at the end over which learning rates decay linearly to 0 (CycleGAN: 0.5; 0 = off)",
    "z_dim": "noise dimension (int > 0; 0 for translation variants, whose input is an image)",
    "optimizer": "adam or rmsprop",
    "lr_g": "generator learning rate (> 0)",
    "lr_d": "discriminator learning rate (> 0); differs from lr_g for TTUR",
    "betas": "Adam betas [beta1, beta2], each in [0, 1)",
}
# Keys of a train.variants.<name> map besides the spec's: the preset it starts from, and a
# training setting of its own.
VARIANT_KEYS = {
    "preset": "the registered variant to start from (default: the variant's own name)",
    "steps": "generator updates of this variant (default: train.steps)",
}
# Options every image discriminator takes, whatever its arch (applied by ``build``).
ANY_DISCRIMINATOR = {
    "scales": "N >= 1: the same architecture, separate weights, at full, 1/2, 1/4 ... resolution, logits side by "
              "side so the loss is the mean of the per-scale losses (pix2pixHD's multi-scale D)",
}
# conditioning: {inputs: [...], embed: N}: what each key means (`flows variants` lists them)
MULTI_CONDITIONING = {
    "inputs": "the per-sample inputs G is conditioned on, by name: label (the class) and any of the data set's "
              "inputs (measured on grey images: thickness, slant, width, height; a folder's prepare.inputs columns)",
    "embed": "width of each input's branch (label: an embedding; continuous: Linear-LeakyReLU-Linear), default 16",
}
CONDITIONING = ("none", "input", "auxiliary")
# Keys left out of a preset take these; they come first in a spec's mapping (checkpoints record it).
DEFAULTS = {"tricks": {}, "conditioning": "none", "ema": 0.0, "ema_rampup": 0.0, "lr_decay": 0.0}
ORDER = (*DEFAULTS, "generator", "discriminator", "loss", "z_dim", "optimizer", "lr_g", "lr_d", "betas")


@dataclass(frozen=True)
class Component:
    """A network or loss by its registered name, with the options params.yaml gives it."""

    tag: str  # the key naming it: "arch" (networks) or "name" (loss)
    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {self.tag: self.name, **copy.deepcopy(dict(self.options))}


@dataclass(frozen=True)
class VariantSpec:
    """Everything that defines a variant's networks, loss and optimisers; resolved once."""

    name: str
    generator: Component
    discriminator: Component
    loss: Component
    z_dim: int
    optimizer: str  # adam | rmsprop
    lr_g: float
    lr_d: float
    betas: tuple[float, float]
    tricks: Tricks  # every trick, defaults included
    tricks_set: Mapping[str, Any]  # the tricks as written (what to_dict records)
    conditioning: str | Mapping[str, Any]  # none | input | auxiliary | {inputs: [...], embed: N}
    ema: float = 0.0
    ema_rampup: float = 0.0
    lr_decay: float = 0.0

    @property
    def translation(self) -> str | None:
        """"paired" / "unpaired" when the loss translates images (pix2pix, CycleGAN), else None."""
        return translation_of(self.loss.name)

    @property
    def inputs(self) -> tuple[list[str], int] | None:
        """(input names, branch width) of ``conditioning: {inputs, embed}``, else None."""
        if not isinstance(self.conditioning, Mapping):
            return None
        return list(self.conditioning["inputs"]), int(self.conditioning.get("embed", 16))

    def to_dict(self) -> dict[str, Any]:
        values = {"tricks": copy.deepcopy(dict(self.tricks_set)), "conditioning": copy.deepcopy(self.conditioning),
                  "ema": self.ema, "ema_rampup": self.ema_rampup, "lr_decay": self.lr_decay,
                  "generator": self.generator.to_dict(), "discriminator": self.discriminator.to_dict(),
                  "loss": self.loss.to_dict(), "z_dim": self.z_dim, "optimizer": self.optimizer,
                  "lr_g": self.lr_g, "lr_d": self.lr_d, "betas": list(self.betas)}
        return {k: values[k] for k in ORDER}

    @classmethod
    def parse(cls, name: str, spec: Mapping[str, Any]) -> "VariantSpec":
        """Validate a complete spec mapping (keys left out take ``DEFAULTS``)."""
        spec = {**copy.deepcopy(DEFAULTS), **copy.deepcopy(dict(spec))}
        unknown = set(spec) - set(TOP_LEVEL_KEYS)
        if unknown:
            raise ValueError(f"variant {name!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(TOP_LEVEL_KEYS)}")
        missing = set(TOP_LEVEL_KEYS) - set(spec)
        if missing:
            raise ValueError(f"variant {name!r}: missing key(s) {sorted(missing)}")
        parts = {}
        for key, tag in (("generator", "arch"), ("discriminator", "arch"), ("loss", "name")):
            part = spec[key]
            if not isinstance(part, dict) or tag not in part:
                raise ValueError(f"variant {name!r}: {key} must be a mapping with a {tag!r} key, got {part!r}")
            parts[key] = Component(tag, part[tag], {k: v for k, v in part.items() if k != tag})
        LOSSES.entry(parts["loss"].name)  # raises with the known names
        translating = translation_of(parts["loss"].name) is not None
        g = parts["generator"].name
        own, other = (TRANSLATORS, GENERATORS) if translating else (GENERATORS, TRANSLATORS)
        if g not in own and g in other:
            raise ValueError(f"variant {name!r}: generator {g!r} " + (
                f"draws from noise, but loss {parts['loss'].name!r} translates images; use one of "
                f"{', '.join(TRANSLATORS.names())}" if translating else
                f"translates images and needs a translation loss (pix2pix, cyclegan); generators from noise: "
                f"{', '.join(GENERATORS.names())}"))
        own.entry(g)
        DISCRIMINATORS.entry(parts["discriminator"].name)
        z = spec["z_dim"]
        if not isinstance(z, int) or isinstance(z, bool) or z < (0 if translating else 1):
            raise ValueError(f"variant {name!r}: z_dim must be " + ("0 (a translation generator's input is an image)"
                             if translating else "a positive integer") + f", got {z!r}")
        if translating and z:
            raise ValueError(f"variant {name!r}: z_dim must be 0 for a translation variant (its input is an image; "
                             f"pix2pix's noise is dropout), got {z!r}")
        if translating and spec["conditioning"] != "none":
            raise ValueError(f"variant {name!r}: conditioning does not apply to a translation loss (its input is an "
                             f"image), got conditioning: {spec['conditioning']!r}")
        if translating and spec["tricks"]:
            raise ValueError(f"variant {name!r}: {', '.join('tricks.' + k for k in spec['tricks'])} do(es) not apply "
                             "to a translation loss; remove it")
        d = spec["lr_decay"]
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d <= 1:
            raise ValueError(f"variant {name!r}: lr_decay must be a share of the steps in [0, 1] (0 = off), got {d!r}")
        if spec["optimizer"] not in ("adam", "rmsprop"):
            raise ValueError(f"variant {name!r}: optimizer must be adam or rmsprop, got {spec['optimizer']!r}")
        for key in ("lr_g", "lr_d"):
            v = spec[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
                raise ValueError(f"variant {name!r}: {key} must be a number > 0, got {v!r}")
        if isinstance(spec["conditioning"], dict):
            _multi_inputs(name, spec["conditioning"])
        elif spec["conditioning"] not in CONDITIONING:
            raise ValueError(f"variant {name!r}: conditioning must be one of {', '.join(CONDITIONING)} or a mapping "
                             f"{{inputs: [label, thickness, ...], embed: 16}}, got {spec['conditioning']!r}")
        e = spec["ema"]
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e < 1:
            raise ValueError(f"variant {name!r}: ema must be a decay in [0, 1) (0 = off), got {e!r}")
        r = spec["ema_rampup"]
        if isinstance(r, bool) or not isinstance(r, (int, float)) or r < 0 or (r and not e):
            raise ValueError(f"variant {name!r}: ema_rampup must be a number >= 0, and needs ema > 0 (the decay it "
                             f"ramps up to), got ema_rampup {r!r} with ema {e!r}")
        if not isinstance(spec["tricks"], dict):
            raise ValueError(f"variant {name!r}: tricks must be a mapping, got {spec['tricks']!r}")
        tricks = call_with_options(f"variant {name!r}: tricks", Tricks, {}, spec["tricks"])
        b = spec["betas"]
        if (not isinstance(b, (list, tuple)) or len(b) != 2
                or not all(isinstance(x, (int, float)) and 0 <= x < 1 for x in b)):
            raise ValueError(f"variant {name!r}: betas must be two numbers in [0, 1), got {b!r}")
        return cls(name=name, generator=parts["generator"], discriminator=parts["discriminator"], loss=parts["loss"],
                   z_dim=z, optimizer=spec["optimizer"], lr_g=spec["lr_g"], lr_d=spec["lr_d"], betas=tuple(b),
                   tricks=tricks, tricks_set=spec["tricks"], conditioning=spec["conditioning"], ema=e,
                   ema_rampup=r, lr_decay=d)


def translation_of(loss_name: str) -> str | None:
    """"paired" / "unpaired" when the loss ``loss_name`` translates images, else None."""
    return getattr(LOSSES.get(loss_name), "translation", None) if loss_name in LOSSES else None


def _multi_inputs(name: str, cond: dict[str, Any]) -> tuple[list[str], int]:
    """The input names and branch width of a ``conditioning: {inputs, embed}`` mapping."""
    unknown = set(cond) - set(MULTI_CONDITIONING)
    if unknown:
        raise ValueError(f"variant {name!r}: unknown conditioning key(s) {sorted(unknown)}; allowed: "
                         f"{sorted(MULTI_CONDITIONING)}")
    inputs, embed = cond.get("inputs"), cond.get("embed", 16)
    if (not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) and i for i in inputs)
            or len(set(inputs)) != len(inputs)):
        raise ValueError(f"variant {name!r}: conditioning.inputs must be a non-empty list of distinct input names "
                         f"(label, thickness, ...), got {inputs!r}")
    if isinstance(embed, bool) or not isinstance(embed, int) or embed < 1:
        raise ValueError(f"variant {name!r}: conditioning.embed must be an integer >= 1, got {embed!r}")
    return inputs, embed


# Presets: named, validated specs (``presets.py`` registers the built-ins; plugins add theirs).
VARIANTS: Registry[VariantSpec] = Registry("variant")


def register_variant(name: str, description: str, spec: dict[str, Any]) -> None:
    """Register a preset; keys left out take ``DEFAULTS``; the spec is validated now."""
    VARIANTS.register(name, VariantSpec.parse(name, spec), description)


def resolve(name: str, overrides: Mapping[str, Any] | None = None) -> VariantSpec:
    """The preset ``overrides.get('preset', name)`` with the user's overrides (the spec keys of a
    ``train.variants.<name>`` map) merged in."""
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", name)
    spec = VARIANTS.get(preset).to_dict()
    for key, value in overrides.items():
        if key not in TOP_LEVEL_KEYS:
            raise ValueError(f"variant {name!r}: unknown key {key!r}; allowed: preset, "
                             f"{', '.join(sorted(TOP_LEVEL_KEYS))}")
        if key == "tricks" and isinstance(value, dict):
            spec[key] = {**spec[key], **copy.deepcopy(value)}
        elif key in ("generator", "discriminator", "loss") and isinstance(value, dict):
            tag = "name" if key == "loss" else "arch"
            if tag in value and value[tag] != spec[key][tag]:
                spec[key] = copy.deepcopy(value)  # another component: its own defaults
            else:
                spec[key] = {**spec[key], **copy.deepcopy(value)}
        else:
            spec[key] = copy.deepcopy(value)
    return VariantSpec.parse(name, spec)
