"""Noise-dimension traversal (export): the effect of each dimension against a closed form, the
grid's rows, and the stage's record."""

from __future__ import annotations

import math

import pytest
import torch

from tasks.export import TRAVERSAL_BASES, TRAVERSAL_VALUES, noise_traversal


class _OneKnob(torch.nn.Module):
    """An 'image' that depends on z[2] strongly, z[5] weakly and nothing else."""

    n_classes = 0

    def forward(self, z, y=None):
        v = torch.tanh(z[:, 2]) + 0.1 * z[:, 5]
        return v[:, None, None, None].expand(-1, 1, 4, 4).clone()


def test_traversal_ranks_dimensions_by_their_measured_effect_and_moves_one_at_a_time():
    grid, record = noise_traversal(_OneKnob(), 8, seed=0)
    effect = record["effect"]
    assert effect[2] == pytest.approx(2 * math.tanh(3), rel=1e-6)  # |G(z2=+3) - G(z2=-3)|
    assert effect[5] == pytest.approx(0.6, rel=1e-6)  # 0.1 * 6
    assert all(effect[d] == 0 for d in range(8) if d not in (2, 5))
    assert record["dims"][:2] == [2, 5] and len(record["dims"]) == 6
    assert grid.shape == (6 * TRAVERSAL_BASES * len(TRAVERSAL_VALUES), 1, 4, 4)
    # the first row: dimension 2 swept over the values on the first base vector
    row = grid[:len(TRAVERSAL_VALUES), 0, 0, 0]
    base_z5 = row[3] - math.tanh(0.0)  # at z2 = 0 the pixel is 0.1 * z5 of the base vector
    expected = torch.tanh(torch.tensor(TRAVERSAL_VALUES)) + base_z5
    torch.testing.assert_close(row, expected, rtol=1e-5, atol=1e-6)


def test_a_conditional_generator_keeps_each_rows_label():
    seen = []

    class Cond(torch.nn.Module):
        n_classes = 3

        def forward(self, z, y=None):
            seen.append(y.clone())
            return (z[:, :1] + y[:, None].float())[:, :, None, None].expand(-1, 1, 2, 2).clone()

    grid, record = noise_traversal(Cond(), 4, seed=1)
    labels = seen[-1].view(-1, len(TRAVERSAL_VALUES))
    assert (labels == labels[:, :1]).all()  # one label per row
    assert record["effect"][0] == pytest.approx(6.0, rel=1e-6) and record["dims"][0] == 0
