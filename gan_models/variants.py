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
from .registry import Registry, call_with_options


@dataclass(frozen=True)
class DataInfo:
    """What a variant needs to know about the prepared data."""

    kind: str  # "image" (C, H, W) in [-1, 1] or "points" (D,) unbounded
    shape: tuple[int, ...]
    n_classes: int = 0  # 0 when the data set has no labels


GENERATORS: Registry[Callable[..., nn.Module]] = Registry("generator architecture")
DISCRIMINATORS: Registry[Callable[..., nn.Module]] = Registry("discriminator architecture")
LOSSES: Registry[Callable[..., losses.GANLoss]] = Registry("loss")
VARIANTS: Registry[dict[str, Any]] = Registry("variant")

TOP_LEVEL_KEYS = {
    "generator": "generator architecture and its options: {arch: NAME, ...}",
    "discriminator": "discriminator architecture and its options: {arch: NAME, ...}",
    "loss": "adversarial loss and its options: {name: NAME, ...}",
    "z_dim": "noise dimension (int > 0)",
    "optimizer": "adam or rmsprop",
    "lr_g": "generator learning rate (> 0)",
    "lr_d": "discriminator learning rate (> 0); differs from lr_g for TTUR",
    "betas": "Adam betas [beta1, beta2], each in [0, 1)",
}


def register_variant(name: str, description: str, spec: dict[str, Any]) -> None:
    """Register a preset; the spec is validated now, against a placeholder data shape."""
    _validate_spec(name, spec)
    VARIANTS.register(name, copy.deepcopy(spec), description)


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
        if key in ("generator", "discriminator", "loss") and isinstance(value, dict):
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
    g_opts = dict(spec["generator"])
    g_arch = g_opts.pop("arch")
    d_opts = dict(spec["discriminator"])
    d_arch = d_opts.pop("arch")
    l_opts = dict(spec["loss"])
    l_name = l_opts.pop("name")
    out_act = "tanh" if data.kind == "image" else "identity"
    G = call_with_options(f"variant {name!r}: generator {g_arch!r}", GENERATORS.get(g_arch),
                          {"z_dim": spec["z_dim"], "data_shape": data.shape, "out_activation": out_act}, g_opts)
    D = call_with_options(f"variant {name!r}: discriminator {d_arch!r}", DISCRIMINATORS.get(d_arch),
                          {"data_shape": data.shape}, d_opts)
    loss = call_with_options(f"variant {name!r}: loss {l_name!r}", LOSSES.get(l_name), {}, l_opts)
    return GAN(name=name, spec=spec, G=G, D=D, loss=loss, z_dim=spec["z_dim"])


# ----------------------------------------------------------------------------------------------
# Components.


def _spectral_norm(module: nn.Module) -> nn.Module:
    """Spectral normalization (Miyato et al. 2018) on every Linear / Conv layer of ``module``."""
    for name, child in list(module.named_children()):
        if isinstance(child, (nn.Linear, nn.Conv2d)):
            setattr(module, name, nn.utils.parametrizations.spectral_norm(child))
        else:
            _spectral_norm(child)
    return module


def _mlp_generator(z_dim, data_shape, out_activation, hidden: list = (256,)):
    return networks.MLPGenerator(z_dim, data_shape, hidden=list(hidden), out_activation=out_activation)


def _mlp_discriminator(data_shape, hidden: list = (256,), spectral_norm: bool = False):
    D = networks.MLPDiscriminator(data_shape, hidden=list(hidden))
    return _spectral_norm(D) if spectral_norm else D


def _dcgan_generator(z_dim, data_shape, out_activation, width: int = 64):
    return networks.DCGANGenerator(z_dim, data_shape, width=width, out_activation=out_activation)


def _dcgan_discriminator(data_shape, width: int = 64, batchnorm: bool = True, spectral_norm: bool = False):
    D = networks.DCGANDiscriminator(data_shape, width=width, batchnorm=batchnorm)
    return _spectral_norm(D) if spectral_norm else D


GENERATORS.register("mlp", _mlp_generator, "MLP: z -> [Linear, LeakyReLU(0.2)]*n -> Linear -> Tanh")
GENERATORS.register("dcgan", _dcgan_generator, "transposed convolutions + BatchNorm + ReLU (Radford et al. 2016)")
DISCRIMINATORS.register("mlp", _mlp_discriminator, "MLP: flatten -> [Linear, LeakyReLU(0.2)]*n -> logit")
DISCRIMINATORS.register("dcgan", _dcgan_discriminator, "strided convolutions + BatchNorm + LeakyReLU(0.2)")
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


def generator_from_checkpoint(ckpt: dict[str, Any]) -> tuple[nn.Module, int]:
    """Rebuild a checkpoint's generator from the architecture it records; returns (G, z_dim)."""
    d = ckpt["data"]
    info = DataInfo(d["kind"], tuple(d["shape"]), int(d.get("n_classes", 0)))
    gan = build(ckpt["variant"], ckpt["spec"], info)
    gan.G.load_state_dict(ckpt["G"])
    return gan.G.eval(), gan.z_dim
