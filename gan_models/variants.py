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

from . import losses, networks
from .data import DataInfo
from .registry import Registry, call_with_options

__all__ = ["DataInfo"]  # re-exported: variants are built for a DataInfo


# What `build` passes every builder of a kind; a builder's other parameters are its options.
G_ARGS = ("z_dim", "data_shape", "out_activation", "n_classes")
D_ARGS = ("data_shape", "n_classes", "aux_classes")
GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator architecture", G_ARGS)
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator architecture", D_ARGS)
LOSSES: Registry[Callable[..., losses.GANLoss]] = Registry("loss", ())
VARIANTS: Registry[dict[str, Any]] = Registry("variant")

TOP_LEVEL_KEYS = {
    "generator": "generator architecture and its options: {arch: NAME, ...}",
    "discriminator": "discriminator architecture and its options: {arch: NAME, ...}",
    "loss": "adversarial loss and its options: {name: NAME, ...}",
    "tricks": "loss tricks: {feature_matching, unrolled_steps, unrolled_lr, augment, aux_weight, pack}",
    "conditioning": "none, input (cGAN: G and D get the label) or auxiliary (ACGAN: D classifies)",
    "ema": "decay of an exponential moving average of G's weights used for sampling (0 = off)",
    "z_dim": "noise dimension (int > 0)",
    "optimizer": "adam or rmsprop",
    "lr_g": "generator learning rate (> 0)",
    "lr_d": "discriminator learning rate (> 0); differs from lr_g for TTUR",
    "betas": "Adam betas [beta1, beta2], each in [0, 1)",
}
DEFAULTS = {"tricks": {}, "conditioning": "none", "ema": 0.0}
CONDITIONING = ("none", "input", "auxiliary")


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
    for key, tag, reg in (("generator", "arch", GENERATORS), ("discriminator", "arch", DISCRIMINATORS),
                          ("loss", "name", LOSSES)):
        part = spec[key]
        if not isinstance(part, dict) or tag not in part:
            raise ValueError(f"variant {name!r}: {key} must be a mapping with a {tag!r} key, got {part!r}")
        reg.entry(part[tag])  # raises with the known names
    if not isinstance(spec["z_dim"], int) or isinstance(spec["z_dim"], bool) or spec["z_dim"] < 1:
        raise ValueError(f"variant {name!r}: z_dim must be a positive integer, got {spec['z_dim']!r}")
    if spec["optimizer"] not in ("adam", "rmsprop"):
        raise ValueError(f"variant {name!r}: optimizer must be adam or rmsprop, got {spec['optimizer']!r}")
    for key in ("lr_g", "lr_d"):
        v = spec[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not v > 0:
            raise ValueError(f"variant {name!r}: {key} must be a number > 0, got {v!r}")
    if spec["conditioning"] not in CONDITIONING:
        raise ValueError(f"variant {name!r}: conditioning must be one of {', '.join(CONDITIONING)}, "
                         f"got {spec['conditioning']!r}")
    e = spec["ema"]
    if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 <= e < 1:
        raise ValueError(f"variant {name!r}: ema must be a decay in [0, 1) (0 = off), got {e!r}")
    if not isinstance(spec["tricks"], dict):
        raise ValueError(f"variant {name!r}: tricks must be a mapping, got {spec['tricks']!r}")
    call_with_options(f"variant {name!r}: tricks", losses.Tricks, {}, spec["tricks"])
    b = spec["betas"]
    if (not isinstance(b, (list, tuple)) or len(b) != 2
            or not all(isinstance(x, (int, float)) and 0 <= x < 1 for x in b)):
        raise ValueError(f"variant {name!r}: betas must be two numbers in [0, 1), got {b!r}")


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
    def ema(self) -> float:
        return float(self.spec.get("ema", 0.0))

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
    tricks = call_with_options(f"variant {name!r}: tricks", losses.Tricks, {}, spec["tricks"])
    cond = spec["conditioning"]
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
    D = call_with_options(f"variant {name!r}: discriminator {d_arch!r}", DISCRIMINATORS.get(d_arch),
                          {"data_shape": d_shape, "n_classes": n_cls if cond == "input" else 0,
                           "aux_classes": n_cls if cond == "auxiliary" else 0}, d_opts)
    if tricks.pack > 1:
        D = networks.Packed(D, tricks.pack)
    loss = call_with_options(f"variant {name!r}: loss {l_name!r}", LOSSES.get(l_name), {}, l_opts)
    loss.tricks = tricks
    loss.auxiliary = cond == "auxiliary"
    if tricks.feature_matching and tricks.unrolled_steps:
        raise ValueError(f"variant {name!r}: tricks.feature_matching and tricks.unrolled_steps exclude each other")
    return GAN(name=name, spec=spec, G=G, D=D, loss=loss, z_dim=spec["z_dim"], n_classes=n_cls)


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
DISCRIMINATORS.register("mlp", _mlp_discriminator, "MLP: flatten -> [Linear, LeakyReLU(0.2)]*n -> logit; "
                        "options: spectral_norm, minibatch_features, maxout (pieces per unit)")
DISCRIMINATORS.register("dcgan", _dcgan_discriminator, "strided convolutions + BatchNorm + LeakyReLU(0.2); options: "
                        "batchnorm, spectral_norm, self_attention, minibatch_features")
DISCRIMINATORS.register("resnet", _resnet_discriminator, "residual down-sampling blocks, global sum pooling")
DISCRIMINATORS.register("progan", _progan_discriminator, "progressive growing mirror of the generator, "
                        "minibatch standard deviation")
LOSSES.register("bce", losses.BCELoss, "sigmoid cross-entropy, non-saturating G loss by default")
LOSSES.register("lsgan", losses.LSGANLoss, "least squares (Mao et al. 2017)")
LOSSES.register("hinge", losses.HingeLoss, "hinge loss (Lim & Ye 2017; SNGAN/SAGAN)")
LOSSES.register("wgan", losses.WassersteinLoss, "Wasserstein critic with weight clipping, n_critic")
LOSSES.register("wgan_gp", losses.WassersteinGPLoss, "Wasserstein critic with gradient penalty, n_critic")

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
    info = DataInfo(d["kind"], tuple(d["shape"]), int(d.get("n_classes", 0)))
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
register_variant("progan", "progressive growing: resolution doubles in phases with fade-in, WGAN-GP with drift, "
                 "minibatch stddev (Karras et al. 2018)", {
                     "generator": {"arch": "progan", "width": 32},
                     "discriminator": {"arch": "progan", "width": 32},
                     "loss": {"name": "wgan_gp", "n_critic": 1, "gp_weight": 10.0, "drift": 0.001},
                     "z_dim": 100, "optimizer": "adam", "lr_g": 1e-3, "lr_d": 1e-3, "betas": [0.0, 0.99]})
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
