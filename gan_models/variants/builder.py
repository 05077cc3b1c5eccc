"""A spec made real: networks, a complete loss, optimizers (``build``), and a generator rebuilt
from a checkpoint (``generator_from_checkpoint``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn

from ..data.base import DataInfo
from ..losses import LOSSES, GANLoss
from ..networks import DISCRIMINATORS, GENERATORS, TRANSLATORS
from ..networks import conditioning as cond_
from ..networks.translation import DiscriminatorPair, TranslatorPair
from ..networks.wrappers import MultiScale, Packed
from ..registry import call_with_options
from .spec import VariantSpec

# What the perceptual loss term runs on: a fixed network, images in [-1, 1] -> (B, F) features.
FeatureNet = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class GAN:
    """A built variant: networks, loss and the optimizer settings."""

    spec: VariantSpec
    G: nn.Module
    D: nn.Module
    loss: GANLoss
    n_classes: int = 0  # > 0: G takes labels

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def z_dim(self) -> int:
        return self.spec.z_dim

    @property
    def conditioned(self) -> bool:
        """G takes rows of several conditioning inputs (gan_models.networks.conditioning)."""
        return cond_.is_conditioned(self.G)

    @property
    def translation(self) -> str | None:
        """"paired"/"unpaired" for a translation variant (G maps input images to targets)."""
        return self.loss.translation

    def make_optimizers(self) -> tuple[torch.optim.Optimizer, torch.optim.Optimizer]:
        s = self.spec
        if s.optimizer == "rmsprop":
            return (torch.optim.RMSprop(self.G.parameters(), lr=s.lr_g, foreach=True),
                    torch.optim.RMSprop(self.D.parameters(), lr=s.lr_d, foreach=True))
        return (torch.optim.Adam(self.G.parameters(), lr=s.lr_g, betas=s.betas, foreach=True),
                torch.optim.Adam(self.D.parameters(), lr=s.lr_d, betas=s.betas, foreach=True))


def build(spec: VariantSpec, data: DataInfo, perceptual_net: Callable[[], FeatureNet] | None = None) -> GAN:
    """Networks and loss for ``spec`` on ``data``; raises ValueError naming the bad option.

    ``perceptual_net`` loads the feature network of ``tricks.perceptual_weight``; it is called after
    the networks are made, so their initial weights draw the same random numbers with or without it."""
    name, tricks = spec.name, spec.tricks
    if spec.translation is not None:
        return _build_translation(spec, data)
    if data.translation is not None and spec.generator.name in TRANSLATORS:
        raise ValueError(f"variant {name!r}: generator {spec.generator.name!r} needs a translation loss")
    if spec.inputs is not None:
        return _build_multi(spec, data, perceptual_net)
    cond = spec.conditioning
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
    G = call_with_options(f"variant {name!r}: generator {spec.generator.name!r}", GENERATORS.get(spec.generator.name),
                          {"z_dim": spec.z_dim, "data_shape": data.shape, "out_activation": out_act,
                           "n_classes": n_cls}, spec.generator.options)
    D = _make_discriminator(spec, d_shape, n_cls if cond == "input" else 0, n_cls if cond == "auxiliary" else 0)
    if tricks.pack > 1:
        D = Packed(D, tricks.pack)
    loss = _make_loss(spec, auxiliary=cond == "auxiliary", perceptual_net=perceptual_net)
    return GAN(spec=spec, G=G, D=D, loss=loss, n_classes=n_cls)


def _make_loss(spec: VariantSpec, auxiliary: bool = False,
               perceptual_net: Callable[[], FeatureNet] | None = None) -> GANLoss:
    net = perceptual_net() if perceptual_net is not None and spec.tricks.perceptual_weight else None
    return LOSSES.get(spec.loss.name).create(dict(spec.loss.options), tricks=spec.tricks, auxiliary=auxiliary,
                                             perceptual_net=net,
                                             what=f"variant {spec.name!r}: loss {spec.loss.name!r}")


def _make_discriminator(spec: VariantSpec, d_shape: tuple, n_classes: int, aux_classes: int):
    """One discriminator, or ``discriminator.scales`` of them at halving resolutions (pix2pixHD)."""
    name, d_arch = spec.name, spec.discriminator.name
    d_opts = dict(spec.discriminator.options)
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

    return make_d(d_shape) if scales == 1 else MultiScale(make_d, d_shape, scales)


def _build_multi(spec: VariantSpec, data: DataInfo, perceptual_net) -> GAN:
    """G: a branch per input, fused with the noise by concatenation, into any generator; D: any
    discriminator with a projection head over the fused condition (gan_models.networks.conditioning)."""
    name = spec.name
    names, embed = spec.inputs
    if spec.tricks.pack > 1:
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
    inner = call_with_options(f"variant {name!r}: generator {spec.generator.name!r}",
                              GENERATORS.get(spec.generator.name),
                              {"z_dim": spec.z_dim + g_enc.out_dim, "data_shape": data.shape,
                               "out_activation": "tanh", "n_classes": 0}, spec.generator.options)
    G = cond_.ConditionalGenerator(inner, g_enc, spec.z_dim)
    d_inner = _make_discriminator(spec, tuple(data.shape), 0, 0)
    D = cond_.ProjectionDiscriminator(d_inner, encoder(), cond_.feature_dim(d_inner, data.shape))
    return GAN(spec=spec, G=G, D=D, loss=_make_loss(spec, perceptual_net=perceptual_net), n_classes=0)


def _build_translation(spec: VariantSpec, data: DataInfo) -> GAN:
    """pix2pix: G(source) -> target, D on cat(source, image).  CycleGAN: a TranslatorPair of
    two generators (A -> B, B -> A) and a DiscriminatorPair (one per domain)."""
    name, l_name = spec.name, spec.loss.name
    loss = _make_loss(spec)
    task = loss.translation
    if data.translation is None or data.source_shape is None:
        raise ValueError(f"variant {name!r}: loss {l_name!r} translates images and needs a translation data set "
                         "(prepare.dataset: edges2digits, thin2thick, paired_folder or unpaired_folder)")
    if task == "paired" and data.translation != "paired":
        raise ValueError(f"variant {name!r}: loss {l_name!r} needs paired data (every input with its target), "
                         f"but the data set is {data.translation}; use cyclegan for unpaired data")
    a, b = tuple(data.source_shape), tuple(data.shape)
    g_arch, d_arch = spec.generator.name, spec.discriminator.name
    make_g, make_d = TRANSLATORS.get(g_arch), DISCRIMINATORS.get(d_arch)

    def gen(src, dst):
        return call_with_options(f"variant {name!r}: generator {g_arch!r}", make_g,
                                 {"source_shape": src, "data_shape": dst, "out_activation": "tanh"},
                                 spec.generator.options)

    def disc(shape):
        return call_with_options(f"variant {name!r}: discriminator {d_arch!r}", make_d,
                                 {"data_shape": shape, "n_classes": 0, "aux_classes": 0}, spec.discriminator.options)

    if task == "paired":
        G, D = gen(a, b), disc((a[0] + b[0], *b[1:]))  # D judges (input, image) pairs
    else:
        if getattr(loss, "identity_weight", 0) and a[0] != b[0]:
            raise ValueError(f"variant {name!r}: the identity term needs both domains to have the same channels "
                             f"({a[0]} vs {b[0]}); set loss.identity_weight: 0")
        G = TranslatorPair(gen(a, b), gen(b, a))
        D = DiscriminatorPair(disc(b), disc(a))
    return GAN(spec=spec, G=G, D=D, loss=loss, n_classes=0)


def memory_format(kind: str) -> torch.memory_format:
    """Image networks run in channels_last (about 1.2x faster convolutions on the CPU,
    benchmarks/speedups.py), in training and when rebuilt from a checkpoint alike, so that a
    loaded generator reproduces the trained one's outputs bit for bit."""
    return torch.channels_last if kind == "image" else torch.contiguous_format


def generator_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> tuple[nn.Module, int]:
    """Rebuild a checkpoint's generator (its EMA weights when kept) from the architecture it
    records, on ``device``; returns (G, z_dim).  ``G.n_classes > 0`` means it wants labels."""
    d = ckpt["data"]
    src = d.get("source_shape")
    info = DataInfo(d["kind"], tuple(d["shape"]), int(d.get("n_classes", 0)), translation=d.get("task"),
                    source_shape=tuple(src) if src else None,
                    inputs=tuple((str(n), int(k)) for n, k in d.get("inputs", [])))
    gan = build(VariantSpec.parse(ckpt["variant"], ckpt["spec"]), info)
    gan.G.to(memory_format=memory_format(info.kind))
    gan.G.load_state_dict(ckpt["G_ema"] if ckpt.get("G_ema") is not None else ckpt["G"])
    if hasattr(gan.G, "set_progress"):  # progressive growing: the resolution reached at this step
        gan.G.set_progress(min(1.0, ckpt["step"] / max(1, ckpt["train"]["steps"])))
    return gan.G.to(device).eval(), gan.z_dim
