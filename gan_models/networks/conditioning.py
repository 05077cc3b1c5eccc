"""Conditioning on several named per-sample inputs at once ("multimodal" fusion).

A variant with ``conditioning: {inputs: [label, thickness, slant], embed: 16}`` is conditioned on
the class label (categorical) and on any number of continuous inputs: attributes measured from
the images, or vectors a user brings (a text embedding per image, ...).  The conditions of a batch
travel as one float tensor ``c`` of shape (N, columns): the inputs side by side in the order the
variant names them, the label as its class index in one column, a d-dimensional input in d
columns.  Wherever the rest of the package passes class labels ``y``, a multi-input variant
passes ``c``.

* ``ConditionEncoder``: one branch per input (an embedding for the label, a small MLP for a
  continuous input, standardised by the training set's mean and standard deviation), outputs
  concatenated: the fused condition.
* ``ConditionalGenerator``: wraps any noise-to-image generator built for ``z_dim + fused``
  inputs and feeds it ``[z, fused(c)]`` (fusion by concatenation with the noise; StyleGAN's
  mapping network then maps both to w: StyleGAN2-ADA's conditional mapping also concatenates an
  embedded condition with z, normalising the two separately where ours normalises them together).
* ``ProjectionDiscriminator``: wraps any discriminator; its logit gains the projection term
  ``<V fused(c), phi(x)>`` of Miyato & Koyama (2018) on the discriminator's last features
  ``phi(x)``; with a multi-scale D (features of all scales side by side) or a patch D the term is
  added to every scale's or patch's logit.
* ``fit``: the training set's conditions give the encoders' standardisation and a bank of
  ``BANK`` real condition rows kept in the generator (saved in its checkpoint), drawn class by
  class in turn, so that sampling without data asks for realistic combinations, every class
  equally often (``conditions_for``).

Nothing here reads files: the inputs' names and sizes come from the data set's description.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

BANK = 1000  # real condition rows kept in a generator for sampling
LABEL = "label"


class ConditionEncoder(nn.Module):
    """``inputs``: (name, dim) in column order, ``("label", 0)`` for the class label."""

    def __init__(self, inputs: Sequence[tuple[str, int]], n_classes: int, embed: int):
        super().__init__()
        self.inputs = [(str(n), int(d)) for n, d in inputs]
        self.n_classes, self.embed = n_classes, embed
        self.slices: list[tuple[str, int, int]] = []
        col = 0
        branches = {}
        for name, dim in self.inputs:
            if name == LABEL:
                branches[name] = nn.Embedding(n_classes, embed)
                self.slices.append((name, col, col + 1))
                col += 1
            else:
                branches[name] = nn.Sequential(nn.Linear(dim, embed), nn.LeakyReLU(0.2), nn.Linear(embed, embed))
                self.slices.append((name, col, col + dim))
                col += dim
        self.branches = nn.ModuleDict(branches)
        self.columns = col
        self.out_dim = embed * len(self.inputs)
        # standardisation of the continuous columns (the label column keeps 0 / 1)
        self.register_buffer("mean", torch.zeros(col))
        self.register_buffer("std", torch.ones(col))

    def span(self, name: str) -> slice | None:
        """The columns of input ``name`` in a condition row (None: not one of this encoder's inputs)."""
        return next((slice(lo, hi) for n, lo, hi in self.slices if n == name), None)

    def forward(self, c: torch.Tensor) -> torch.Tensor:
        if c is None:
            raise ValueError(f"this network is conditioned on {', '.join(n for n, _ in self.inputs)}: pass their "
                             "values (gan_models.conditioning.conditions_for(G, n) draws realistic ones)")
        if c.dim() != 2 or c.shape[1] != self.columns:
            raise ValueError(f"conditions must be (N, {self.columns}) for inputs "
                             f"{', '.join(f'{n}({d or 1})' for n, d in self.inputs)}, got {tuple(c.shape)}")
        parts = []
        for name, lo, hi in self.slices:
            if name == LABEL:
                parts.append(self.branches[name](c[:, lo].round().long()))
            else:
                v = (c[:, lo:hi] - self.mean[lo:hi]) / self.std[lo:hi]
                parts.append(self.branches[name](v.to(self.branches[name][0].weight.dtype)))
        return torch.cat(parts, 1)


class ConditionalGenerator(nn.Module):
    """``inner`` built for noise of ``z_dim + encoder.out_dim``; maps (z, c) to images."""

    def __init__(self, inner: nn.Module, encoder: ConditionEncoder, z_dim: int):
        super().__init__()
        self.inner, self.encoder, self.z_dim = inner, encoder, z_dim
        if hasattr(inner, "fixed_tail"):  # StyleGAN's mixing redraws the noise, not the condition columns
            inner.fixed_tail = encoder.out_dim
        self.n_classes = 0  # no bare labels: conditions go in as rows of ``c``
        self.register_buffer("bank", torch.zeros(BANK, encoder.columns))

    @property
    def inputs(self) -> list[tuple[str, int]]:
        return self.encoder.inputs

    def fused(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return torch.cat([z, self.encoder(c).to(z.dtype)], 1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.inner(self.fused(z, c), None)

    # Whatever the wrapped generator offers (progressive growing's set_progress, StyleGAN's
    # synthesis, num_ws, truncation_psi ...) is offered here; StyleGAN's mapping takes the conditions.
    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = super().__getattr__("inner")
            if name == "mapping_ws" and hasattr(inner, "mapping_ws"):
                return lambda z, c, psi=None: inner.mapping_ws(self.fused(z, c), None, psi=psi)
            return getattr(inner, name)

    def __setattr__(self, name: str, value) -> None:
        if name == "truncation_psi" and "inner" in self._modules:
            setattr(self._modules["inner"], name, value)
        else:
            super().__setattr__(name, value)


class ProjectionDiscriminator(nn.Module):
    """Miyato & Koyama (2018): logits(x, c) = psi(phi(x)) + <V e(c), phi(x)>, e = the fused condition."""

    def __init__(self, inner: nn.Module, encoder: ConditionEncoder, feature_dim: int):
        super().__init__()
        self.inner, self.encoder = inner, encoder
        self.project = nn.Linear(encoder.out_dim, feature_dim, bias=False)
        nn.init.normal_(self.project.weight, std=0.02)

    def forward_all(self, x: torch.Tensor, c: torch.Tensor | None = None) -> dict[str, torch.Tensor | None]:
        out = self.inner.forward_all(x, None)
        feats = out["features"]
        proj = (self.project(self.encoder(c).to(feats.dtype)) * feats).sum(1)
        logits = out["logits"]  # (B,), (B, scales) or a patch map (B, 1, H, W): the term is per sample
        return {**out, "logits": logits + proj.view(-1, *[1] * (logits.dim() - 1))}

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return self.forward_all(x, c)["logits"]


def feature_dim(D: nn.Module, data_shape: Sequence[int]) -> int:
    """The width of ``D.forward_all(x)["features"]``, from one forward pass on zeros in eval mode."""
    was = D.training
    D.eval()
    try:
        with torch.no_grad():
            return int(D.forward_all(torch.zeros(2, *data_shape), None)["features"].shape[1])
    finally:
        D.train(was)


def is_conditioned(G: nn.Module) -> bool:
    return isinstance(G, ConditionalGenerator)


def table(inputs: Sequence[tuple[str, int]], labels: np.ndarray | None,
          values: dict[str, np.ndarray]) -> torch.Tensor:
    """The (N, columns) float32 condition rows of a data set: its labels and per-image inputs."""
    cols = []
    for name, _ in inputs:
        if name == LABEL:
            if labels is None:
                raise ValueError("conditioning on label needs a labelled data set")
            cols.append(np.asarray(labels, np.float32).reshape(-1, 1))
        else:
            cols.append(np.asarray(values[name], np.float32).reshape(len(values[name]), -1))
    return torch.from_numpy(np.concatenate(cols, 1))


@torch.no_grad()
def fit(G: ConditionalGenerator, encoders: Sequence[ConditionEncoder], rows: torch.Tensor, seed: int) -> None:
    """Standardise every encoder's continuous columns by ``rows`` and fill ``G.bank`` with
    ``BANK`` of them: with a label input, row i has class ``i % n_classes`` (each a random row of
    that class), so that the first K x n rows ask for every class n times."""
    enc = G.encoder
    mean = rows.double().mean(0)
    std = rows.double().std(0).clamp_min(1e-6)
    label = enc.span(LABEL)
    if label is not None:  # the label column is a class index
        mean[label], std[label] = 0.0, 1.0
    for e in encoders:
        e.mean.copy_(mean.to(e.mean.dtype))
        e.std.copy_(std.to(e.std.dtype))
    gen = torch.Generator().manual_seed(seed)
    if label is None:
        pick = torch.randint(rows.shape[0], (BANK,), generator=gen)
    else:
        classes = rows[:, label.start].round().long()
        by_class = [torch.nonzero(classes == k).flatten() for k in range(enc.n_classes)]
        empty = [k for k, idx in enumerate(by_class) if not len(idx)]
        if empty:
            raise ValueError(f"conditioning on label: the training split has no sample of class(es) {empty}")
        pick = torch.stack([by_class[i % enc.n_classes][torch.randint(len(by_class[i % enc.n_classes]), (1,),
                                                                       generator=gen)[0]] for i in range(BANK)])
    G.bank.copy_(rows[pick].to(G.bank.dtype))


def balanced_labels(n: int, n_classes: int) -> torch.Tensor | None:
    """0, 1, ..., K-1, 0, 1, ... for a conditional G (None for an unconditional one)."""
    return torch.arange(n) % n_classes if n_classes else None


def conditions_for(G: nn.Module, n: int) -> torch.Tensor | None:
    """What a generator is asked to draw for ``n`` samples: classes 0..K-1 in turn for a
    label-conditional G, the first ``n`` rows of the bank (cycled) for a multi-input one, None for
    an unconditional one."""
    if isinstance(G, ConditionalGenerator):
        return G.bank[torch.arange(n) % G.bank.shape[0]].cpu()
    return balanced_labels(n, getattr(G, "n_classes", 0))


def requested_labels(G: nn.Module, c: torch.Tensor | None) -> torch.Tensor | None:
    """The class labels among the conditions ``c`` (None when G is not asked for classes)."""
    if c is None:
        return None
    if isinstance(G, ConditionalGenerator):
        label = G.encoder.span(LABEL)
        return c[:, label.start].round().long() if label is not None else None
    return c


def column(G: ConditionalGenerator, name: str, c: torch.Tensor) -> torch.Tensor:
    """The columns of input ``name`` in conditions ``c`` (a view)."""
    cols = G.encoder.span(name)
    if cols is None:
        raise KeyError(name)
    return c[:, cols]


def with_column(G: ConditionalGenerator, name: str, c: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """``c`` with input ``name`` set to ``value`` (broadcast over rows)."""
    out = c.clone()
    column(G, name, out)[:] = value
    return out

