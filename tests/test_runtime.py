"""gan_models.runtime: keeping freed memory changes speed, never results."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CHILD = """
import hashlib, json, resource, sys, torch
from gan_models import runtime, variants as V
from gan_models.training import Trainer
applied = runtime.keep_freed_memory() if sys.argv[1] == "on" else False
torch.set_num_threads(1)
torch.manual_seed(0)
spec = V.resolve("dcgan", {"generator": {"width": 8}, "discriminator": {"width": 8}, "z_dim": 8})
gan = V.build(spec, V.DataInfo("image", (1, 28, 28), 10))
tr = Trainer(gan, torch.randint(0, 256, (200, 1, 28, 28), dtype=torch.uint8), batch_size=32, seed=0)
tr.run(3, log_every=0, progress=False)
x = torch.ones(4 << 20, dtype=torch.uint8); y = torch.ones(16 << 20, dtype=torch.uint8); del x, y  # first touch
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    x = torch.ones(4 << 20, dtype=torch.uint8); del x
    y = torch.ones(16 << 20, dtype=torch.uint8); del y
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0
tr.run(6, log_every=0, progress=False)
h = hashlib.sha256(b"".join(t.detach().contiguous().numpy().tobytes() for t in tr.G.state_dict().values()))
print(json.dumps({"applied": applied, "faults": faults, "weights": h.hexdigest()}))
"""


def _child(mode: str) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], cwd=ROOT, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keeping_freed_memory_stops_page_faults_and_keeps_results_bit_identical():
    off, on = _child("off"), _child("on")
    assert on["applied"] is True
    assert on["weights"] == off["weights"]  # the same training steps give the same weights
    # 20 x (4 MiB + 16 MiB) written after a first touch of both sizes: glibc's default maps
    # some of them anew (thousands of faults, 3,700-5,000 measured); kept freed memory reuses
    # every page (0 measured).
    assert off["faults"] > 1_000, off
    assert on["faults"] < 100, on


class _FakeLibc:
    """Stands in for glibc: records every mallopt call, answers ``answer`` (1 = success)."""

    def __init__(self, answer: int):
        self.calls: list[tuple[int, int]] = []
        lib = self

        class Mallopt:
            argtypes = restype = None

            def __call__(self, param, value):
                lib.calls.append((param, value))
                return answer

        self.mallopt = Mallopt()


@pytest.mark.parametrize("answer,applied", [(1, True), (0, False)])
def test_keep_freed_memory_is_idempotent(monkeypatch, answer, applied):
    """The first call sets both glibc thresholds (mallopt, <malloc.h> parameter numbers) and
    reports whether glibc accepted them; later calls, whatever their arguments, change nothing and
    return the first outcome, also when glibc refused."""
    import ctypes

    from gan_models import runtime

    libc = _FakeLibc(answer)
    opened: list[str] = []
    monkeypatch.setattr(runtime, "_applied", None)  # as in a fresh process
    monkeypatch.setattr(runtime.sys, "platform", "linux")
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: opened.append(name) or libc)
    first = runtime.keep_freed_memory()
    assert first is applied
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
    expected = [(M_MMAP_THRESHOLD, 256 << 20), (M_TRIM_THRESHOLD, 1 << 30)] if answer else [(M_MMAP_THRESHOLD, 256 << 20)]
    assert libc.calls == expected
    assert libc.mallopt.argtypes == [ctypes.c_int, ctypes.c_int] and libc.mallopt.restype is ctypes.c_int
    assert len(opened) == 1
    assert runtime.keep_freed_memory() is applied
    assert runtime.keep_freed_memory(mmap_threshold=1 << 20, trim_threshold=1 << 20) is applied
    assert libc.calls == expected and len(opened) == 1  # glibc not touched again


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_keep_freed_memory_settings_of_the_first_call_stay_in_force():
    """In a real process: after keep_freed_memory() a second call asking for a 4 KiB mmap
    threshold changes nothing, so large blocks are still reused (no page faults), while a process
    whose first call asks for that threshold maps them anew every time."""
    child = """
import json, resource, sys, torch
from gan_models import runtime
calls = [{}] if sys.argv[1] == "default-first" else []
calls.append({"mmap_threshold": 4096, "trim_threshold": 0})
results = [runtime.keep_freed_memory(**c) for c in calls]
def loop():
    for _ in range(10):
        x = torch.ones(4 << 20, dtype=torch.uint8); del x
        y = torch.ones(16 << 20, dtype=torch.uint8); del y
loop()  # warm-up: the first touch of the heap faults in any case
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
loop()
print(json.dumps({"results": results, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0}))
"""
    run = lambda mode: json.loads(subprocess.run(  # noqa: E731
        [sys.executable, "-c", child, mode], cwd=ROOT, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    kept, small = run("default-first"), run("small-first")
    assert kept["results"] == [True, True] and small["results"] == [True]
    # 10 x (4 + 16 MiB) after a warm-up: reused from the heap (0 measured) or, with a 4 KiB mmap
    # threshold, mapped anew every time, 1,024 + 4,096 pages each (51,220 measured)
    assert kept["faults"] < 500, kept
    assert small["faults"] > 20_000, small
