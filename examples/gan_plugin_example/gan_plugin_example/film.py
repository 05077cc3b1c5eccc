"""A generator conditioned by feature-wise linear modulation of its hidden layers."""

from __future__ import annotations

import math

import torch
from torch import nn


class FiLMGenerator(nn.Module):
    """z -> [Linear -> (1 + gamma(y)) * h + beta(y) -> LeakyReLU(0.2)] * n -> Linear -> out act.

    ``n_classes = 0``: unconditional (no modulation).  gamma and beta come from a learned label
    embedding, one pair per hidden layer, initialised at zero so training starts unmodulated.
    """

    def __init__(self, z_dim: int, data_shape, hidden=(256, 256), out_activation: str = "tanh",
                 n_classes: int = 0, embed_dim: int = 32):
        super().__init__()
        self.z_dim, self.n_classes, self.data_shape = z_dim, n_classes, tuple(data_shape)
        widths = [z_dim, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:]))
        if n_classes:
            self.embed = nn.Embedding(n_classes, embed_dim)
            self.films = nn.ModuleList(nn.Linear(embed_dim, 2 * h) for h in hidden)
            for f in self.films:
                nn.init.zeros_(f.weight)
                nn.init.zeros_(f.bias)
        self.out = nn.Linear(widths[-1], math.prod(self.data_shape))
        self.out_act = nn.Tanh() if out_activation == "tanh" else nn.Identity()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = z
        e = self.embed(y) if self.n_classes and y is not None else None
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if e is not None:
                gamma, beta = self.films[i](e).chunk(2, dim=1)
                h = (1 + gamma) * h + beta
            h = nn.functional.leaky_relu(h, 0.2)
        return self.out_act(self.out(h)).view(z.shape[0], *self.data_shape)
