"""Variants: named presets composing a generator, a discriminator and a loss.

A variant spec is a plain dict::

    {"generator": {"arch": "dcgan", "width": 64},
     "discriminator": {"arch": "dcgan", "width": 64},
     "loss": {"name": "bce"},
     "z_dim": 100, "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}

``resolve_spec(preset, overrides)`` merges a user's overrides into a preset; changing a
component's ``arch``/``name`` replaces that component's options, otherwise options merge.
``build(spec, data)`` turns a resolved spec into networks, a loss and optimizers.

All built-ins are registered in the block at the bottom of this file.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from . import conditioning as cond_, losses, networks, stylegan, translation
from .data import DataInfo
from .registry import Registry, call_with_options

__all__ = ["DataInfo"]  # re-exported: variants are built for a DataInfo


# What `build` passes every builder of a kind; a builder's other parameters are its options.
G_ARGS = ("z_dim", "data_shape", "out_activation", "n_classes")
D_ARGS = ("data_shape", "n_classes", "aux_classes")
GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator architecture", G_ARGS)
# Image-to-image generators (the generator of a variant whose loss translates: pix2pix, CycleGAN)
# map input images of ``source_shape`` to images of ``data_shape``.
T_ARGS = ("source_shape", "data_shape", "out_activation")
TRANSLATORS: Registry[Callable[..., nn.Module]] = Registry("translation generator architecture", T_ARGS)
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator architecture", D_ARGS)
LOSSES: Registry[Callable[..., losses.GANLoss]] = Registry("loss", ())
VARIANTS: Registry[dict[str, Any]] = Registry("variant")

TOP_LEVEL_KEYS = {
    "generator": "generator architecture and its options: {arch: NAME, ...}",
    "discriminator": "discriminator architecture and its options: {arch: NAME, ...}",
    "loss": "adversarial loss and its options: {name: NAME, ...}",
    "tricks": "loss tricks: {feature_matching, unrolled_steps, unrolled_lr, augment, aux_weight, pack}",
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
# Options every image discriminator takes, whatever its arch (applied by ``build``).
ANY_DISCRIMINATOR = {
    "scales": "N >= 1: the same architecture, separate weights, at full, 1/2, 1/4 ... resolution, logits side by "
              "side so the loss is the mean of the per-scale losses (pix2pixHD's multi-scale D)",
}
DEFAULTS = {"tricks": {}, "conditioning": "none", "ema": 0.0, "ema_rampup": 0.0, "lr_decay": 0.0}
CONDITIONING = ("none", "input", "auxiliary")
# conditioning: {inputs: [...], embed: N}: what each key means (`flows variants` lists them)
MULTI_CONDITIONING = {
    "inputs": "the per-sample inputs G is conditioned on, by name: label (the class) and any of the data set's "
              "inputs (measured on grey images: thickness, slant, width, height; a folder's prepare.inputs columns)",
    "embed": "width of each input's branch (label: an embedding; continuous: Linear-LeakyReLU-Linear), default 16",
}


def register_variant(name: str, description: str, spec: dict[str, Any]) -> None:
    """Register a preset; keys left out take ``DEFAULTS``; the spec is validated now."""
    spec = {**copy.deepcopy(DEFAULTS), **copy.deepcopy(spec)}
    _validate_spec(name, spec)
    VARIANTS.register(name, spec, description)


def _validate_spec(name: str, spec: dict[str, Any]) -> None:
    unknown = set(spec) - set(TOP_LEVEL_KEYS)
    if unknown:
        raise ValueError(f"variant {name!r}: unknown key(s) {sorted(unknown)}; allowed: {sorted(TOP_LEVEL_KEYS)}")
    missing = set(TOP_LEVEL_KEYS) - set(spec)
    if missing:
        raise ValueError(f"variant {name!r}: missing key(s) {sorted(missing)}")
    for key, tag in (("generator", "arch"), ("discriminator", "arch"), ("loss", "name")):
        part = spec[key]
        if not isinstance(part, dict) or tag not in part:
            raise ValueError(f"variant {name!r}: {key} must be a mapping with a {tag!r} key, got {part!r}")
    translating = translation_task(spec) is not None
    for key, tag, reg in (("generator", "arch", TRANSLATORS if translating else GENERATORS),
                          ("discriminator", "arch", DISCRIMINATORS), ("loss", "name", LOSSES)):
        arch = spec[key][tag]
        if key == "generator" and arch not in reg and arch in (GENERATORS if translating else TRANSLATORS):
            raise ValueError(f"variant {name!r}: generator {arch!r} " + (
                f"draws from noise, but loss {spec['loss']['name']!r} translates images; use one of "
                f"{', '.join(TRANSLATORS.names())}" if translating else
                f"translates images and needs a translation loss (pix2pix, cyclegan); generators from noise: "
                f"{', '.join(GENERATORS.names())}"))
        reg.entry(arch)  # raises with the known names
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
        raise ValueError(f"variant {name!r}: {', '.join('tricks.' + k for k in spec['tricks'])} do(es) not apply to "
                         "a translation loss; remove it")
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
    call_with_options(f"variant {name!r}: tricks", losses.Tricks, {}, spec["tricks"])
    b = spec["betas"]
    if (not isinstance(b, (list, tuple)) or len(b) != 2
            or not all(isinstance(x, (int, float)) and 0 <= x < 1 for x in b)):
        raise ValueError(f"variant {name!r}: betas must be two numbers in [0, 1), got {b!r}")


def translation_task(spec: dict[str, Any]) -> str | None:
    """"paired" / "unpaired" when the spec's loss translates images (pix2pix, CycleGAN), else None."""
    entry = LOSSES._entries.get(spec.get("loss", {}).get("name")) if isinstance(spec.get("loss"), dict) else None
    return getattr(entry.value, "translation", None) if entry is not None else None


def resolve_spec(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The preset ``overrides.get('preset', name)`` with the user's overrides merged in."""
    overrides = dict(overrides or {})
    preset = overrides.pop("preset", name)
    spec = copy.deepcopy(VARIANTS.get(preset))
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
    _validate_spec(name, spec)
    return spec


@dataclass
class GAN:
    """A built variant: networks, loss and the optimizer settings."""

    name: str
    spec: dict[str, Any]
    G: nn.Module
    D: nn.Module
    loss: losses.GANLoss
    z_dim: int
    n_classes: int = 0  # > 0: G takes labels

    @property
    def conditioned(self) -> bool:
        """G takes rows of several conditioning inputs (gan_models.conditioning)."""
        return cond_.is_conditioned(self.G)

    @property
    def ema(self) -> float:
        return float(self.spec.get("ema", 0.0))

    @property
    def task(self) -> str | None:
        """"paired"/"unpaired" for a translation variant (G maps input images to targets)."""
        return self.loss.translation

    def make_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        s = self.spec
        if s["optimizer"] == "rmsprop":
            return (torch.optim.RMSprop(self.G.parameters(), lr=s["lr_g"], foreach=True),
                    torch.optim.RMSprop(self.D.parameters(), lr=s["lr_d"], foreach=True))
        betas = tuple(s["betas"])
        return (torch.optim.Adam(self.G.parameters(), lr=s["lr_g"], betas=betas, foreach=True),
                torch.optim.Adam(self.D.parameters(), lr=s["lr_d"], betas=betas, foreach=True))


def build(name: str, spec: dict[str, Any], data: DataInfo) -> GAN:
    """Build networks and loss for a resolved spec; raises ValueError naming the bad option."""
    spec = {**DEFAULTS, **spec}
    g_opts = dict(spec["generator"])
    g_arch = g_opts.pop("arch")
    d_opts = dict(spec["discriminator"])
    d_arch = d_opts.pop("arch")
    l_opts = dict(spec["loss"])
    l_name = l_opts.pop("name")
    if translation_task(spec) is not None:
        return _build_translation(name, spec, data, g_arch, g_opts, d_arch, d_opts, l_name, l_opts)
    if data.task is not None and g_arch in TRANSLATORS:
        raise ValueError(f"variant {name!r}: generator {g_arch!r} needs a translation loss")
    tricks = call_with_options(f"variant {name!r}: tricks", losses.Tricks, {}, spec["tricks"])
    cond = spec["conditioning"]
    if isinstance(cond, dict):
        return _build_multi(name, spec, data, tricks, g_arch, g_opts, d_arch, d_opts, l_name, l_opts)
    if cond != "none" and data.n_classes < 2:
        raise ValueError(f"variant {name!r}: conditioning {cond!r} needs labelled data (class labels); "
                         "this data set has none")
    n_cls = data.n_classes if cond != "none" else 0
    d_shape = tuple(data.shape)
    if tricks.pack > 1:
        if cond != "none":  # a packed D sees m samples at once: there is no one label to take or predict
            raise ValueError(f"variant {name!r}: tricks.pack cannot be combined with conditioning: {cond} "
                             "(a packed discriminator judges m samples together, so it has no per-sample label)")
        d_shape = (d_shape[0] * tricks.pack, *d_shape[1:])  # m samples side by side (channels/features)
    out_act = "tanh" if data.kind == "image" else "identity"
    G = call_with_options(f"variant {name!r}: generator {g_arch!r}", GENERATORS.get(g_arch),
                          {"z_dim": spec["z_dim"], "data_shape": data.shape, "out_activation": out_act,
                           "n_classes": n_cls}, g_opts)
    D = _make_discriminator(name, d_arch, d_opts, d_shape, n_cls if cond == "input" else 0,
                            n_cls if cond == "auxiliary" else 0)
    if tricks.pack > 1:
        D = networks.Packed(D, tricks.pack)
    loss = _make_loss(name, l_name, l_opts, tricks, auxiliary=cond == "auxiliary")
    return GAN(name=name, spec=spec, G=G, D=D, loss=loss, z_dim=spec["z_dim"], n_classes=n_cls)


def _make_discriminator(name: str, d_arch: str, d_opts: dict, d_shape: tuple, n_classes: int, aux_classes: int):
    """One discriminator, or ``discriminator.scales`` of them at halving resolutions (pix2pixHD)."""
    d_opts = dict(d_opts)
    scales = d_opts.pop("scales", 1)  # any image discriminator, at several resolutions (pix2pixHD)
    if isinstance(scales, bool) or not isinstance(scales, int) or scales < 1:
        raise ValueError(f"variant {name!r}: discriminator.scales must be an integer >= 1, got {scales!r}")

    def make_d(shape):
        try:
            return call_with_options(f"variant {name!r}: discriminator {d_arch!r}", DISCRIMINATORS.get(d_arch),
                                     {"data_shape": shape, "n_classes": n_classes, "aux_classes": aux_classes},
                                     d_opts)
        except ValueError as e:
            if shape == d_shape:
                raise
            raise ValueError(f"variant {name!r}: discriminator.scales={scales}: the {d_arch} discriminator cannot "
                             f"take the {shape[-1]}x{shape[-1]} scale ({e}); lower discriminator.scales") from None

    return make_d(d_shape) if scales == 1 else networks.MultiScale(make_d, d_shape, scales)


def _make_loss(name: str, l_name: str, l_opts: dict, tricks: losses.Tricks, auxiliary: bool) -> losses.GANLoss:
    loss = call_with_options(f"variant {name!r}: loss {l_name!r}", LOSSES.get(l_name), {}, l_opts)
    loss.tricks = tricks
    loss.auxiliary = auxiliary
    if tricks.feature_matching and tricks.unrolled_steps:
        raise ValueError(f"variant {name!r}: tricks.feature_matching and tricks.unrolled_steps exclude each other")
    return loss


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


def _build_multi(name, spec, data: DataInfo, tricks, g_arch, g_opts, d_arch, d_opts, l_name, l_opts) -> GAN:
    """G: a branch per input, fused with the noise by concatenation, into any generator; D: any
    discriminator with a projection head over the fused condition (gan_models.conditioning)."""
    names, embed = _multi_inputs(name, spec["conditioning"])
    if tricks.pack > 1:
        raise ValueError(f"variant {name!r}: tricks.pack cannot be combined with conditioning inputs (a packed "
                         "discriminator judges m samples together, so it has no per-sample condition)")
    available = dict(data.inputs)
    have = (["label"] if data.n_classes >= 2 else []) + sorted(available)
    inputs = []
    for n in names:
        if n == cond_.LABEL and data.n_classes >= 2:
            inputs.append((n, 0))
        elif n in available:
            inputs.append((n, int(available[n])))
        else:
            raise ValueError(f"variant {name!r}: conditioning input {n!r} is not in this data set; it has: "
                             f"{', '.join(have) or 'none'} (prepare measures thickness, slant, width and height "
                             "on grey images; a folder brings its own with prepare.inputs)")
    if data.kind != "image":
        raise ValueError(f"variant {name!r}: conditioning inputs apply to image data, not {data.kind}")

    def encoder():
        return cond_.ConditionEncoder(inputs, data.n_classes, embed)

    g_enc = encoder()
    inner = call_with_options(f"variant {name!r}: generator {g_arch!r}", GENERATORS.get(g_arch),
                              {"z_dim": spec["z_dim"] + g_enc.out_dim, "data_shape": data.shape,
                               "out_activation": "tanh", "n_classes": 0}, g_opts)
    G = cond_.ConditionalGenerator(inner, g_enc, spec["z_dim"])
    d_inner = _make_discriminator(name, d_arch, d_opts, tuple(data.shape), 0, 0)
    D = cond_.ProjectionDiscriminator(d_inner, encoder(), cond_.feature_dim(d_inner, data.shape))
    loss = _make_loss(name, l_name, l_opts, tricks, auxiliary=False)
    return GAN(name=name, spec=spec, G=G, D=D, loss=loss, z_dim=spec["z_dim"], n_classes=0)


def _build_translation(name, spec, data: DataInfo, g_arch, g_opts, d_arch, d_opts, l_name, l_opts) -> GAN:
    """pix2pix: G(source) -> target, D on cat(source, image).  CycleGAN: a TranslatorPair of
    two generators (A -> B, B -> A) and a DiscriminatorPair (one per domain)."""
    loss = call_with_options(f"variant {name!r}: loss {l_name!r}", LOSSES.get(l_name), {}, l_opts)
    task = loss.translation
    if data.task is None or data.source_shape is None:
        raise ValueError(f"variant {name!r}: loss {l_name!r} translates images and needs a translation data set "
                         "(prepare.dataset: edges2digits, thin2thick, paired_folder or unpaired_folder)")
    if task == "paired" and data.task != "paired":
        raise ValueError(f"variant {name!r}: loss {l_name!r} needs paired data (every input with its target), "
                         f"but the data set is {data.task}; use cyclegan for unpaired data")
    a, b = tuple(data.source_shape), tuple(data.shape)
    make_g = TRANSLATORS.get(g_arch)
    make_d = DISCRIMINATORS.get(d_arch)

    def gen(src, dst):
        return call_with_options(f"variant {name!r}: generator {g_arch!r}", make_g,
                                 {"source_shape": src, "data_shape": dst, "out_activation": "tanh"}, g_opts)

    def disc(shape):
        return call_with_options(f"variant {name!r}: discriminator {d_arch!r}", make_d,
                                 {"data_shape": shape, "n_classes": 0, "aux_classes": 0}, d_opts)

    if task == "paired":
        G, D = gen(a, b), disc((a[0] + b[0], *b[1:]))  # D judges (input, image) pairs
    else:
        if getattr(loss, "identity_weight", 0) and a[0] != b[0]:
            raise ValueError(f"variant {name!r}: the identity term needs both domains to have the same channels "
                             f"({a[0]} vs {b[0]}); set loss.identity_weight: 0")
        G = translation.TranslatorPair(gen(a, b), gen(b, a))
        D = translation.DiscriminatorPair(disc(b), disc(a))
    return GAN(name=name, spec=spec, G=G, D=D, loss=loss, z_dim=0, n_classes=0)


# ----------------------------------------------------------------------------------------------
# Components.


def _spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every Linear / Conv layer of ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral_norm(child)
    return module


def _sn(module: nn.Module, on: bool) -> nn.Module:
    return _spectral_norm(module) if on else module


def _mlp_generator(z_dim, data_shape, out_activation, n_classes, hidden: list = (256,), batchnorm: bool = False,
                   slope: float = 0.2):
    return networks.MLPGenerator(z_dim, data_shape, hidden=list(hidden), out_activation=out_activation,
                                 n_classes=n_classes, batchnorm=batchnorm, slope=slope)


def _mlp_discriminator(data_shape, n_classes, aux_classes, hidden: list = (256,), spectral_norm: bool = False,
                       minibatch_features: int = 0, maxout: int = 0):
    return _sn(networks.MLPDiscriminator(data_shape, hidden=list(hidden), n_classes=n_classes,
                                         minibatch_features=minibatch_features, aux_classes=aux_classes,
                                         maxout=maxout), spectral_norm)


def _dcgan_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64, self_attention: bool = False,
                     spectral_norm: bool = False):
    return _sn(networks.DCGANGenerator(z_dim, data_shape, width=width, out_activation=out_activation,
                                       n_classes=n_classes, self_attention=self_attention), spectral_norm)


def _dcgan_discriminator(data_shape, n_classes, aux_classes, width: int = 64, batchnorm: bool = True,
                         spectral_norm: bool = False, self_attention: bool = False, minibatch_features: int = 0):
    return _sn(networks.DCGANDiscriminator(data_shape, width=width, batchnorm=batchnorm, n_classes=n_classes,
                                           minibatch_features=minibatch_features, aux_classes=aux_classes,
                                           self_attention=self_attention), spectral_norm)


def _resnet_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64, dropout: float = 0.3):
    return networks.ResNetGenerator(z_dim, data_shape, width=width, dropout=dropout, out_activation=out_activation,
                                    n_classes=n_classes)


def _resnet_discriminator(data_shape, n_classes, aux_classes, width: int = 64, spectral_norm: bool = False,
                          minibatch_features: int = 0):
    return _sn(networks.ResNetDiscriminator(data_shape, width=width, n_classes=n_classes,
                                            minibatch_features=minibatch_features, aux_classes=aux_classes),
               spectral_norm)


def _progan_generator(z_dim, data_shape, out_activation, n_classes, width: int = 64):
    return networks.ProGANGenerator(z_dim, data_shape, width=width, out_activation=out_activation, n_classes=n_classes)


def _progan_discriminator(data_shape, n_classes, aux_classes, width: int = 64, minibatch_features: int = 0):
    return networks.ProGANDiscriminator(data_shape, width=width, n_classes=n_classes,
                                        minibatch_features=minibatch_features, aux_classes=aux_classes)


GENERATORS.register("mlp", _mlp_generator, "MLP: z -> [Linear, LeakyReLU(0.2)]*n -> Linear -> Tanh")
GENERATORS.register("dcgan", _dcgan_generator, "transposed convolutions + BatchNorm + ReLU (Radford et al. 2016); "
                    "options: self_attention, spectral_norm")
GENERATORS.register("resnet", _resnet_generator, "residual up-sampling blocks with BatchNorm and dropout")
GENERATORS.register("progan", _progan_generator, "progressive growing with fade-in, PixelNorm (Karras et al. 2018)")
GENERATORS.register("stylegan", stylegan.StyleGenerator,
                    "StyleGAN2: mapping network (lr x 0.01), constant input, modulated + demodulated convolutions, "
                    "per-layer noise, skip outputs, style mixing, truncation (options: width, max_width, w_dim, "
                    "mapping_depth, mixing_prob, truncation_psi); 28 px drawn at 32 and centre-cropped")
DISCRIMINATORS.register("mlp", _mlp_discriminator, "MLP: flatten -> [Linear, LeakyReLU(0.2)]*n -> logit; "
                        "options: spectral_norm, minibatch_features, maxout (pieces per unit)")
DISCRIMINATORS.register("dcgan", _dcgan_discriminator, "strided convolutions + BatchNorm + LeakyReLU(0.2); options: "
                        "batchnorm, spectral_norm, self_attention, minibatch_features")
DISCRIMINATORS.register("resnet", _resnet_discriminator, "residual down-sampling blocks, global sum pooling")
DISCRIMINATORS.register("progan", _progan_discriminator, "progressive growing mirror of the generator, "
                        "minibatch standard deviation")
DISCRIMINATORS.register("stylegan", stylegan.StyleDiscriminator,
                        "StyleGAN2's residual D with minibatch standard deviation, equalised learning rate "
                        "(options: width, max_width, mbstd_group); 28 px padded to 32 with its edge pixels")


def _unet(source_shape, data_shape, out_activation, width: int = 32, depth: int = 0, dropout: float = 0.5):
    return translation.UNetGenerator(source_shape, data_shape, out_activation, width=width, depth=depth,
                                     dropout=dropout)


def _resnet_blocks(source_shape, data_shape, out_activation, width: int = 32, n_blocks: int = 6, n_down: int = 2):
    return translation.ResnetTranslator(source_shape, data_shape, out_activation, width=width, n_blocks=n_blocks,
                                        n_down=n_down)


def _patchgan(data_shape, n_classes, aux_classes, width: int = 64, n_layers: int = 0, norm: str = "batch"):
    if n_classes or aux_classes:
        raise ValueError("the PatchGAN discriminator takes no class labels (conditioning must be none)")
    return translation.PatchDiscriminator(data_shape, width=width, n_layers=n_layers, norm=norm)


TRANSLATORS.register("unet", _unet, "U-Net with skip connections, dropout as its noise (pix2pix); 28 px is "
                     "padded to 32 inside; options: width, depth (0 = down to 1x1), dropout")
TRANSLATORS.register("resnet_blocks", _resnet_blocks, "down-sampling, residual blocks with InstanceNorm, "
                     "up-sampling (Johnson et al. 2016; CycleGAN); options: width, n_blocks, n_down")
DISCRIMINATORS.register("patchgan", _patchgan, "PatchGAN: a real/fake logit per overlapping patch (pix2pix); "
                        "options: width, n_layers (0 = the deepest whose receptive field fits the image), "
                        "norm batch|instance|none")
LOSSES.register("bce", losses.BCELoss, "sigmoid cross-entropy, non-saturating G loss by default")
LOSSES.register("lsgan", losses.LSGANLoss, "least squares (Mao et al. 2017)")
LOSSES.register("hinge", losses.HingeLoss, "hinge loss (Lim & Ye 2017; SNGAN/SAGAN)")
LOSSES.register("wgan", losses.WassersteinLoss, "Wasserstein critic with weight clipping, n_critic")
LOSSES.register("wgan_gp", losses.WassersteinGPLoss, "Wasserstein critic with gradient penalty, n_critic")
LOSSES.register("pix2pix", losses.Pix2PixLoss, "paired translation: adversarial on (input, output) pairs + "
                "l1_weight * L1 to the target (Isola et al. 2017); options: l1_weight, gan bce|lsgan")
LOSSES.register("cyclegan", losses.CycleGANLoss, "unpaired translation: least squares, cycle consistency "
                "cycle_weight, identity identity_weight * cycle_weight, image pools of pool_size (Zhu et al. 2017)")

_ADAM = {"optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]}

register_variant("mlp", "vanilla GAN: MLP G (100 -> 256 -> out, Tanh) and D (-> 256 -> logit), BCE "
                 "(Goodfellow et al. 2014)", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("mlp_deep", "deeper MLP GAN: G 100 -> 256 -> 512 -> 1024 -> out, D out -> 512 -> 256, BCE", {
    "generator": {"arch": "mlp", "hidden": [256, 512, 1024]},
    "discriminator": {"arch": "mlp", "hidden": [512, 256]},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("dcgan", "DCGAN: transposed-conv G with BatchNorm, strided-conv D (Radford et al. 2016)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("lsgan", "least-squares GAN on the DCGAN networks (Mao et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "lsgan"}, "z_dim": 100, **_ADAM})
register_variant("sngan", "spectral-norm (BigGAN-style) D without BatchNorm, hinge loss (Miyato et al. 2018)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False, "spectral_norm": True},
    "loss": {"name": "hinge"}, "z_dim": 100, "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4,
    "betas": [0.0, 0.9]})
register_variant("wgan", "Wasserstein GAN, weight clipping 0.01, n_critic 5, RMSprop 5e-5 (Arjovsky et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "wgan", "n_critic": 5, "clip": 0.01}, "z_dim": 100,
    "optimizer": "rmsprop", "lr_g": 5e-5, "lr_d": 5e-5, "betas": [0.5, 0.999]})
register_variant("wgan_gp", "Wasserstein GAN with gradient penalty 10, n_critic 5, no BatchNorm in D "
                 "(Gulrajani et al. 2017)", {
                     "generator": {"arch": "dcgan", "width": 64},
                     "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False},
                     "loss": {"name": "wgan_gp", "n_critic": 5, "gp_weight": 10.0}, "z_dim": 100,
                     "optimizer": "adam", "lr_g": 1e-4, "lr_d": 1e-4, "betas": [0.0, 0.9]})


def memory_format(kind: str) -> torch.memory_format:
    """Image networks run in channels_last (about 1.2x faster convolutions on the CPU,
    benchmarks/speedups.py), in training and when rebuilt from a checkpoint alike, so that a
    loaded generator reproduces the trained one's outputs bit for bit."""
    return torch.channels_last if kind == "image" else torch.contiguous_format


def generator_from_checkpoint(ckpt: dict[str, Any]) -> tuple[nn.Module, int]:
    """Rebuild a checkpoint's generator (its EMA weights when kept) from the architecture it
    records; returns (G, z_dim).  ``G.n_classes > 0`` means it wants labels."""
    d = ckpt["data"]
    src = d.get("source_shape")
    info = DataInfo(d["kind"], tuple(d["shape"]), int(d.get("n_classes", 0)), task=d.get("task"),
                    source_shape=tuple(src) if src else None,
                    inputs=tuple((str(n), int(k)) for n, k in d.get("inputs", [])))
    gan = build(ckpt["variant"], ckpt["spec"], info)
    gan.G.to(memory_format=memory_format(info.kind))
    gan.G.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
    if hasattr(gan.G, "set_progress"):  # progressive growing: the resolution reached at this step
        gan.G.set_progress(min(1.0, ckpt["step"] / max(1, ckpt["train"]["steps"])))
    return gan.G.eval(), gan.z_dim
register_variant("resnet", "residual-block G with dropout, residual D, BCE", {
    "generator": {"arch": "resnet", "width": 64, "dropout": 0.3},
    "discriminator": {"arch": "resnet", "width": 64},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("sagan", "self-attention in G and D, spectral norm in both, hinge loss, TTUR 1e-4/4e-4 "
                 "(Zhang et al. 2019)", {
                     "generator": {"arch": "dcgan", "width": 64, "self_attention": True, "spectral_norm": True},
                     "discriminator": {"arch": "dcgan", "width": 64, "batchnorm": False, "spectral_norm": True,
                                       "self_attention": True},
                     "loss": {"name": "hinge"}, "z_dim": 100, "optimizer": "adam", "lr_g": 1e-4, "lr_d": 4e-4,
                     "betas": [0.0, 0.9]})
register_variant("cgan", "conditional GAN: G gets noise + one-hot label, D gets image + label planes "
                 "(Mirza & Osindero 2014), DCGAN networks", {
                     "generator": {"arch": "dcgan", "width": 64},
                     "discriminator": {"arch": "dcgan", "width": 64},
                     "loss": {"name": "bce"}, "conditioning": "input", "z_dim": 100, **_ADAM})
register_variant("acgan", "auxiliary-classifier GAN: conditional G, D with a class head (Odena et al. 2017)", {
    "generator": {"arch": "dcgan", "width": 64},
    "discriminator": {"arch": "dcgan", "width": 64},
    "loss": {"name": "bce"}, "conditioning": "auxiliary", "tricks": {"aux_weight": 1.0}, "z_dim": 100, **_ADAM})
register_variant("multimodal", "several conditioning inputs at once: class label, stroke thickness and slant, "
                 "each through its own branch in G fused with the noise, projection D (Miyato & Koyama 2018), "
                 "DCGAN networks at width 32", {
                     "generator": {"arch": "dcgan", "width": 32},
                     "discriminator": {"arch": "dcgan", "width": 32},
                     "loss": {"name": "bce"}, "conditioning": {"inputs": ["label", "thickness", "slant"], "embed": 16},
                     "z_dim": 100, **_ADAM})
register_variant("progan", "progressive growing: resolution doubles in phases with fade-in, WGAN-GP with drift, "
                 "minibatch stddev (Karras et al. 2018)", {
                     "generator": {"arch": "progan", "width": 32},
                     "discriminator": {"arch": "progan", "width": 32},
                     "loss": {"name": "wgan_gp", "n_critic": 1, "gp_weight": 10.0, "drift": 0.001},
                     "z_dim": 100, "optimizer": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.0, 0.99]})
register_variant("stylegan", "compact StyleGAN2 (Karras et al. 2020): style-based G with style mixing 0.9, "
                 "residual D with minibatch stddev, non-saturating loss, lazy R1 every 16 D steps, G EMA with "
                 "ramp-up, Adam 0.0025 betas (0, 0.99)", {
                     "generator": {"arch": "stylegan", "width": 16, "max_width": 64, "w_dim": 128,
                                   "mapping_depth": 2, "mixing_prob": 0.9, "truncation_psi": 1.0},
                     "discriminator": {"arch": "stylegan", "width": 16, "max_width": 64},
                     "loss": {"name": "bce"}, "tricks": {"r1": 0.1, "r1_every": 16},
                     "ema": 0.998, "ema_rampup": 0.05, "z_dim": 128,
                     "optimizer": "adam", "lr_g": 0.0025, "lr_d": 0.0025, "betas": [0.0, 0.99]})
register_variant("unrolled", "unrolled GAN: G's loss against D unrolled 5 differentiable steps ahead "
                 "(Metz et al. 2017), MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"unrolled_steps": 5, "unrolled_lr": 0.01},
                     "z_dim": 100, **_ADAM})
register_variant("minibatch_disc", "minibatch discrimination layer in D (Salimans et al. 2016), MLP networks", {
    "generator": {"arch": "mlp", "hidden": [256]},
    "discriminator": {"arch": "mlp", "hidden": [256], "minibatch_features": 16},
    "loss": {"name": "bce"}, "z_dim": 100, **_ADAM})
register_variant("feature_matching", "feature-matching G loss on D's last hidden layer (Salimans et al. 2016), "
                 "MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"feature_matching": True}, "z_dim": 100, **_ADAM})
register_variant("pacgan", "packed discriminator judging m=2 samples at once (PacGAN2, Lin et al. 2018), "
                 "MLP networks", {
                     "generator": {"arch": "mlp", "hidden": [256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "bce"}, "tricks": {"pack": 2}, "z_dim": 100, **_ADAM})
register_variant("pix2pix", "paired image-to-image translation: U-Net G, PatchGAN D on (input, output), "
                 "BCE + 100 * L1, Adam 2e-4 beta1 0.5 (Isola et al. 2017)", {
                     "generator": {"arch": "unet", "width": 32, "dropout": 0.5},
                     "discriminator": {"arch": "patchgan", "width": 32, "norm": "batch"},
                     "loss": {"name": "pix2pix", "l1_weight": 100.0, "gan": "bce"}, "z_dim": 0, **_ADAM})
register_variant("cyclegan", "unpaired translation: two ResNet-block Gs, two PatchGAN Ds (InstanceNorm), least "
                 "squares, cycle 10, identity 5, pools of 50 fakes, learning rate constant then linear to 0 over "
                 "the last half (Zhu et al. 2017)", {
                     "generator": {"arch": "resnet_blocks", "width": 32, "n_blocks": 6},
                     "discriminator": {"arch": "patchgan", "width": 32, "norm": "instance"},
                     "loss": {"name": "cyclegan", "cycle_weight": 10.0, "identity_weight": 0.5, "pool_size": 50},
                     "lr_decay": 0.5, "z_dim": 0, **_ADAM})
