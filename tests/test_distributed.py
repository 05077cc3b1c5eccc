"""Data-parallel training of one variant under torchrun, on the CPU with the gloo backend.

For a network without batch statistics (the MLP GAN), two processes that each train on half of
every batch with averaged gradients must follow the same trajectory as one process on the whole
batch, up to float summation order.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY, copy_project, venv_path

pytestmark = pytest.mark.slow

CFG = {**TINY, "train": {**TINY["train"], "steps": 30, "checkpoint_every": 30, "parallel": 1, "threads": 1,
                         "variants": {"mlp": TINY["train"]["variants"]["mlp"]}}}


def _run(cwd, *cmd):
    env = {**os.environ, "PATH": venv_path(), "PYTHONPATH": str(cwd) + os.pathsep + str(ROOT)}
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


def _weights(proj):
    from gan_models.checkpoint import load_checkpoint

    return load_checkpoint(proj / "models" / "mlp" / "train" / "step_0000030.pt")


def test_two_gloo_processes_match_one_process(tmp_path):
    single = copy_project(tmp_path / "single", CFG)
    multi = copy_project(tmp_path / "multi", CFG)
    for proj in (single, multi):
        _run(proj, sys.executable, "-m", "flows", "prepare", "--quiet")
    _run(single, sys.executable, "-m", "flows", "train", "--variant", "mlp", "--quiet")
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    _run(multi, *torchrun, "-m", "flows", "train", "--variant", "mlp", "--quiet")

    a, b = _weights(single), _weights(multi)
    assert a["train"]["processes"] == 1 and b["train"]["processes"] == 2
    assert a["step"] == b["step"] == 30
    for net in ("G", "D"):
        for k, wa in a[net].items():
            wb = b[net][k]
            torch.testing.assert_close(wb, wa, rtol=1e-4, atol=1e-5, msg=f"{net}.{k}")
    # Gradient norms (measured after averaging) match too: a sum instead of a mean would show here
    # even though Adam's update hardly changes with the gradient's scale.
    import json

    hist = lambda p: [json.loads(line) for line in (p / "models/mlp/train/history.jsonl").read_text().splitlines()]  # noqa: E731
    ha, hb = hist(single), hist(multi)
    assert [r["step"] for r in ha] == [r["step"] for r in hb] == [5, 10, 15, 20, 25, 30]
    for ra, rb in zip(ha, hb):
        for k in ("grad_norm/D", "grad_norm/G"):
            assert rb[k] == pytest.approx(ra[k], rel=1e-4), (ra["step"], k)
    # Sanity: the weights did train (30 Adam steps move them), so agreement is not trivial.
    init = _initial_mlp(single)
    assert max(float((a["G"][k] - init[k]).abs().max()) for k in init) > 1e-3
    # Only rank 0 wrote files: one checkpoint, one history.
    files = sorted(p.name for p in (multi / "models" / "mlp" / "train").iterdir())
    assert files == ["curves.csv", "dynamics.png", "history.jsonl", "index.json", "run.json", "step_0000030.pt"]


def _initial_mlp(proj):
    from tasks.layout import Layout, load_prepared
    from tasks.config import load_params
    from gan_models.variants import build

    params = load_params(proj / "params.yaml")
    torch.manual_seed(params.seed)
    gan = build(params.variant_spec("mlp"), load_prepared(Layout(proj)).info)
    return gan.G.state_dict()
