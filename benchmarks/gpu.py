"""One script for a GPU machine, one call, under 8 minutes: ``python benchmarks/gpu.py``.

It measures, on whatever device it finds (cuda when there is one; it runs on the CPU too, which
is how it is tested here), and prints one table (and ``--out`` JSON):

1. training steps per second of this project's loop (``gan_models.training.Trainer``) against a
   plain PyTorch loop of the same DCGAN step, in float32 and under AMP (bf16, and fp16 with a
   gradient scaler);
2. feature extraction images per second: the data set's classifier, and the FID Inception with
   random weights (no weights file is needed to time it);
3. the five stage functions (prepare, train, select, evaluate, export) on a tiny generated RGB
   folder, every stage on the device, tracking off, with each stage's wall time.

It imports only the core and the stage functions: the GPU machine has torch, torchvision,
numpy, scipy and pillow, not Prefect, MLflow or DVC, and no package index.  The stages need
pydantic and PyYAML (the settings): part 3 is skipped, saying so, when they are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _rate(fn, device: torch.device, seconds: float, warmup: int = 3) -> float:
    """Calls of ``fn`` per second over about ``seconds`` (after ``warmup`` calls)."""
    for _ in range(warmup):
        fn()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    _sync(device)
    return n / (time.perf_counter() - t0)


def training_rates(device: torch.device, seconds: float, size: int = 32, batch: int = 64) -> list[dict]:
    """Steps/s of the project's DCGAN step and of a plain loop of the same networks and losses."""
    import torch.nn.functional as F

    from gan_models import variants as V
    from gan_models.training import AMP, Trainer

    rows = []
    data = torch.randint(0, 256, (2048, 3, size, size), dtype=torch.uint8)
    for amp in ("off", "bf16", "fp16"):
        if amp == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
            continue
        torch.manual_seed(0)
        spec = V.resolve("dcgan")
        gan = V.build(spec, V.DataInfo("image", (3, size, size), 0))
        tr = Trainer(gan, data, batch_size=batch, seed=0, device=device, amp=amp)
        ours = _rate(tr.train_step, device, seconds)

        # the plain loop: the same networks, BCE with logits, Adam, one D and one G step
        torch.manual_seed(0)
        gan = V.build(spec, V.DataInfo("image", (3, size, size), 0))
        G, D = gan.G.to(device, memory_format=torch.channels_last), gan.D.to(device, memory_format=torch.channels_last)
        og = torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999))
        od = torch.optim.Adam(D.parameters(), 2e-4, betas=(0.5, 0.999))
        scaler_d = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        scaler_g = torch.amp.GradScaler(device.type, enabled=amp == "fp16")
        ctx = (lambda: torch.autocast(device.type, dtype=AMP[amp])) if amp != "off" else None

        def plain():
            idx = torch.randint(len(data), (batch,))
            real = (data[idx].float() / 127.5 - 1).to(device)
            z = torch.randn(batch, 100, device=device)
            with ctx() if ctx else torch.enable_grad():
                fake = G(z)
                ld = F.softplus(-D(real)).mean() + F.softplus(D(fake.detach())).mean()
            od.zero_grad(set_to_none=True)
            scaler_d.scale(ld).backward()
            scaler_d.step(od)
            scaler_d.update()
            with ctx() if ctx else torch.enable_grad():
                lg = F.softplus(-D(fake)).mean()
            og.zero_grad(set_to_none=True)
            scaler_g.scale(lg).backward()
            scaler_g.step(og)
            scaler_g.update()

        base = _rate(plain, device, seconds)
        rows.append({"what": f"train DCGAN {size} px, batch {batch}, amp {amp}", "ours": round(ours, 1),
                     "plain": round(base, 1), "unit": "steps/s", "ratio": round(ours / base, 3)})
    return rows


def feature_rates(device: torch.device, seconds: float) -> list[dict]:
    from gan_models.features.classifier import SmallCNN, features_and_logits
    from gan_models.features.inception import FIDInception

    rows = []
    x = torch.randint(0, 256, (1000, 3, 32, 32), dtype=torch.uint8)
    clf = SmallCNN(3, 10)
    r = _rate(lambda: features_and_logits(clf, x, device=device), device, seconds, warmup=1)
    rows.append({"what": "features: data set's classifier, 32 px RGB", "ours": round(1000 * r), "unit": "images/s"})
    inc = FIDInception().eval()  # random weights: the same arithmetic as the real ones
    xi = x[:200]
    r = _rate(lambda: features_and_logits(inc, xi, batch_size=100, device=device), device, seconds, warmup=1)
    rows.append({"what": "features: FID Inception (random weights), 32 px -> 299 px", "ours": round(200 * r),
                 "unit": "images/s"})
    return rows


def stage_times(device: torch.device) -> list[dict]:
    try:
        import pydantic  # noqa: F401
        import yaml  # noqa: F401
    except ImportError as e:
        return [{"what": "stages", "ours": None, "unit": "s",
                 "note": f"skipped: {e.name} is not installed (carry its wheels to run the stage functions)"}]
    from benchmarks.folder_data import make_folder
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.export import export
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    rows = []
    with tempfile.TemporaryDirectory(prefix="gpu-stages-") as d:
        folder = make_folder(Path(d) / "images", 2000, size=32, workers=2)
        params = {"seed": 0, "device": str(device), "prepare": {"dataset": "folder", "root": str(folder),
                                                                 "classifier_samples": 4000},
                  "train": {"steps": 300, "checkpoint_every": 100, "batch_size": 64,
                            "variants": {"dcgan": {"generator": {"width": 32}, "discriminator": {"width": 32}}}},
                  "select": {"n_samples": 500}, "evaluate": {"n_samples": 1000},
                  "export": {"n_array": 200}, "tracking": {"enabled": False}}
        import yaml

        Path(d, "params.yaml").write_text(yaml.safe_dump(params))
        cwd = os.getcwd()
        os.chdir(d)
        try:
            p = load_params("params.yaml")
            for name, fn in (("prepare", lambda: prepare(p)), ("train", lambda: train(p, "dcgan", progress=False)),
                             ("select", lambda: select(p, "dcgan")), ("evaluate", lambda: evaluate(p, "dcgan")),
                             ("export", lambda: export(p, "dcgan"))):
                t0 = time.perf_counter()
                fn()
                _sync(device)
                rows.append({"what": f"stage {name} (2,000 RGB 32 px images; dcgan 300 steps)",
                             "ours": round(time.perf_counter() - t0, 2), "unit": "s"})
        finally:
            os.chdir(cwd)
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=10.0, help="timing window per measurement")
    p.add_argument("--out", default=None, help="also write the rows as JSON here")
    a = p.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU ({os.cpu_count()} cores)"
    print(f"device: {name}; torch {torch.__version__}", flush=True)
    t0 = time.time()
    rows = training_rates(device, a.seconds) + feature_rates(device, a.seconds) + stage_times(device)
    width = max(len(r["what"]) for r in rows)
    print(f"\n{'measurement':<{width}}  {'ours':>10}  {'plain':>10}  ratio  unit")
    for r in rows:
        print(f"{r['what']:<{width}}  {str(r['ours']):>10}  {str(r.get('plain', '')):>10}  "
              f"{str(r.get('ratio', '')):>5}  {r['unit']}" + (f"  ({r['note']})" if r.get("note") else ""))
    print(f"\ntotal {time.time() - t0:.0f} s")
    if a.out:
        Path(a.out).write_text(json.dumps({"device": name, "torch": torch.__version__, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
