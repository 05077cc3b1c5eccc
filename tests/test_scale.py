"""Real data on real hardware: a folder decoded in parallel into a memory-mapped array, data larger
than memory read memory-mapped, every stage on the configured device, mixed precision, the
classifier's budget in samples, progress that shows, the resize before Inception."""

from __future__ import annotations

import json
import logging
import math

import numpy as np
import pytest
import torch

from conftest import TINY, cli, write_params


@pytest.fixture(scope="module")
def rgb_folder(tmp_path_factory):
    from benchmarks.folder_data import make_folder

    return make_folder(tmp_path_factory.mktemp("rgb") / "images", 2000, size=16, workers=2)


def test_the_parallel_reader_gives_the_serial_arrays_and_content_hash(rgb_folder, tmp_path):
    from gan_models.data import content_hash
    from gan_models.data.folder import PER_WORKER, image_files, load_folder

    files = image_files(rgb_folder)
    assert len(files) == 2000 and len(files) // PER_WORKER >= 4  # so 4 workers really are 4
    serial = load_folder(str(rgb_folder), workers=1)  # in memory, one process
    assert serial.x.shape == (2000, 3, 16, 16) and not isinstance(serial.x, np.memmap)
    ref = content_hash(serial.x, serial.y)
    for workers in (1, 2, 4):
        scratch = tmp_path / f"w{workers}"
        scratch.mkdir()
        raw = load_folder(str(rgb_folder), workers=workers, scratch=str(scratch))
        assert isinstance(raw.x, np.memmap) and (scratch / "images.npy").is_file()
        assert np.array_equal(raw.x, serial.x) and np.array_equal(raw.y, serial.y)
        assert content_hash(raw.x, raw.y) == ref
    # the labels follow the class folders, the pixels what PIL decodes (an independent read)
    from PIL import Image

    for i in (0, 777, 1999):
        with Image.open(files[i]) as im:
            assert np.array_equal(serial.x[i], np.asarray(im.convert("RGB")).transpose(2, 0, 1))
        assert serial.y[i] == int(files[i].parent.name.split("_")[1])


def test_a_corrupt_image_among_thousands_exits_2_naming_it_before_anything_is_written(rgb_folder, tmp_path):
    import shutil

    folder = tmp_path / "images"
    shutil.copytree(rgb_folder, folder)
    bad = sorted(folder.rglob("*.jpg"))[1234]
    bad.write_bytes(b"\xff\xd8 not a jpeg " * 10)
    proj = tmp_path / "proj"
    proj.mkdir()
    write_params(proj / "params.yaml", {**TINY, "prepare": {"dataset": "folder", "root": str(folder)}})
    proc = cli("prepare", cwd=proj)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr
    assert not (proj / "data").exists()


def test_memory_mapped_data_train_bit_identically_to_in_memory_data(tmp_path):
    from gan_models import variants as V
    from gan_models.data import load_rows, write_rows
    from gan_models.training import Trainer

    x = np.random.default_rng(0).integers(0, 256, (200, 1, 8, 8), dtype=np.uint8)
    mapped = write_rows(tmp_path / "x.npy", x)
    assert isinstance(mapped, np.memmap) and isinstance(load_rows(tmp_path / "x.npy"), np.memmap)

    def weights(data):
        torch.manual_seed(0)
        gan = V.build(V.resolve("dcgan", {"generator": {"width": 4}, "discriminator": {"width": 4}, "z_dim": 4}),
                      V.DataInfo("image", (1, 8, 8), 0))
        tr = Trainer(gan, torch.from_numpy(data), batch_size=16, seed=0)
        for _ in range(5):
            tr.train_step()
        return [p.detach().clone() for p in tr.G.parameters()]

    a, b = weights(x.copy()), weights(mapped)
    assert all(torch.equal(p, q) for p, q in zip(a, b))


def _mlp_trainer(amp: str | None, loss=None):
    from gan_models import variants as V
    from gan_models.training import Trainer

    torch.manual_seed(0)
    gan = V.build(V.resolve("mlp", {"generator": {"hidden": [16]}, "discriminator": {"hidden": [16]}, "z_dim": 4}),
                  V.DataInfo("points", (2,), 0))
    if loss is not None:
        gan.loss = loss
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    if amp is None:  # the Trainer as it is called without the option: float32
        return Trainer(gan, data, batch_size=16, seed=0)
    return Trainer(gan, data, batch_size=16, seed=0, amp=amp)


def test_amp_off_is_the_float32_loop_and_bf16_changes_the_arithmetic():
    fp32, off, bf16 = _mlp_trainer(None), _mlp_trainer("off"), _mlp_trainer("bf16")
    for tr in (fp32, off, bf16):
        for _ in range(4):
            tr.train_step()
    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a.G.parameters(), b.G.parameters()))  # noqa: E731
    assert same(fp32, off)
    assert not same(fp32, bf16) and bf16.skipped_steps == 0
    assert "amp" not in fp32.state_dict() and bf16.state_dict()["amp"]["skipped_steps"] == 0


def test_an_fp16_step_that_overflows_is_skipped_counted_and_logged():
    from gan_models.losses import BCELoss

    class Overflow(BCELoss):
        """Finite, but infinite in the D step after ``boom`` is set."""

        boom = False

        def d_objective(self, real_out, fake_out):
            out = super().d_objective(real_out, fake_out)
            if Overflow.boom:
                Overflow.boom = False
                return out * float("inf")
            return out

    tr = _mlp_trainer("fp16", Overflow.create({}))
    for _ in range(20):  # the scaler starts at 2**16 and halves on its own first overflows, if any
        tr.train_step()
    settled = tr.skipped_steps
    before = [p.detach().clone() for p in tr.D.parameters()]
    Overflow.boom = True
    stats = tr.train_step(measure=True)  # the overflowing D step: skipped, training goes on
    assert tr.skipped_steps == settled + 1 and stats["amp/skipped_steps"] == settled + 1
    assert all(torch.equal(p, q) for p, q in zip(before, tr.D.parameters()))  # D's update was not applied
    assert all(math.isfinite(v) for v in stats.values())
    g_before = [p.detach().clone() for p in tr.G.parameters()]
    tr.train_step()
    assert tr.skipped_steps == settled + 1  # the next step is a normal one again
    assert not all(torch.equal(p, q) for p, q in zip(g_before, tr.G.parameters()))
    assert tr.state_dict()["amp"]["skipped_steps"] == settled + 1


@pytest.mark.parametrize("amp", ["fp16", "bf16"])
def test_a_run_that_diverges_under_amp_stops_instead_of_skipping_every_step(amp):
    """Skipping is for the scaler's occasional overflow: a D whose objective is never finite again
    must end in DivergenceError (before, every step was skipped and the run "finished")."""
    from gan_models.losses import BCELoss
    from gan_models.training import MAX_SKIPPED_IN_A_ROW, DivergenceError

    class Diverged(BCELoss):
        def d_objective(self, real_out, fake_out):
            return super().d_objective(real_out, fake_out) * float("nan")

    tr = _mlp_trainer(amp, Diverged.create({}))
    with pytest.raises(DivergenceError, match="in a row"):
        for _ in range(2 * MAX_SKIPPED_IN_A_ROW):
            tr.train_step()
    assert MAX_SKIPPED_IN_A_ROW <= tr.skipped_steps < 2 * MAX_SKIPPED_IN_A_ROW


def test_a_decoding_worker_imports_no_torch():
    """What a spawned decoding worker imports (the module of the functions it runs) leaves torch
    out: a worker costs tens of MB, not a torch import's half GB."""
    import subprocess
    import sys

    code = "import sys, gan_models.mapped; print(sorted(m for m in ('torch', 'torchvision') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    from gan_models.data import folder

    # the functions the folder loader hands its pool are that module's
    assert folder.decode_images.__module__ == folder.scan_images.__module__ == "gan_models.mapped"


def _resident_file_mb() -> float:
    """The process's file-backed resident memory (memory-mapped pages), MB."""
    for line in open("/proc/self/status"):
        if line.startswith("RssFile:"):
            return int(line.split()[1]) / 1024
    pytest.skip("no RssFile in /proc/self/status")


def test_a_pass_over_a_memory_map_keeps_only_the_piece_in_hand_resident(tmp_path):
    """Data larger than memory: feature extraction through an extractor, classifier training on
    random batches, the content hash, the value range and a split's random gather read a 147 MB
    memory map and leave at most a few pieces of it resident (before, extraction left all of it
    and a gather from a freshly written file mapped nearly all of it)."""
    from gan_models.data import content_hash, load_rows, value_range, write_rows
    from gan_models.features import make as make_extractor
    from gan_models.features.classifier import train_classifier

    n, path = 48_000, tmp_path / "x.npy"
    w = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(n, 3, 32, 32))
    for i in range(0, n, 8000):
        w[i:i + 8000] = np.random.default_rng(i).integers(0, 256, (min(8000, n - i), 3, 32, 32), dtype=np.uint8)
    w.flush()
    del w
    x, y = load_rows(path), np.arange(n) % 10
    total = x.nbytes / 2**20
    base = _resident_file_mb()

    make_extractor("pixels", tmp_path)(x)
    assert _resident_file_mb() - base < 0.15 * total
    train_classifier(x, y, 10, samples=2048, progress=False)
    assert _resident_file_mb() - base < 0.25 * total
    content_hash(x), value_range(x)
    assert _resident_file_mb() - base < 0.5 * total
    write_rows(tmp_path / "shuffled.npy", x, np.random.default_rng(0).permutation(n))  # a split's random gather
    assert _resident_file_mb() - base < 0.5 * total
    x[:n].sum()  # the check can fail: reading it all without giving pages back leaves it resident
    assert _resident_file_mb() - base > 0.9 * total


def test_the_classifier_budget_in_samples_continues_into_a_partial_epoch():
    """samples = whole epochs: exactly the old epoch loop (a transcription of it here); more:
    the next epoch's permutation, cut off at the budget."""
    import torch.nn.functional as F

    from gan_models.data import to_model_range
    from gan_models.features.classifier import ARCHS, train_classifier

    x = np.random.default_rng(0).integers(0, 256, (100, 1, 8, 8), dtype=np.uint8)
    y = np.arange(100) % 3

    def epochs_loop(epochs, extra=0):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = ARCHS["small"](1, 3)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        for e in range(epochs + (1 if extra else 0)):
            perm = torch.randperm(100, generator=gen)
            stop = 100 if e < epochs else extra
            for i in range(0, stop, 32):
                idx = perm[i:min(i + 32, stop)]
                loss = F.cross_entropy(model(to_model_range(xt[idx]))[1], yt[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
        return list(model.parameters())

    same = lambda a, b: all(torch.equal(p, q) for p, q in zip(a, b))  # noqa: E731
    got = train_classifier(x, y, 3, seed=0, samples=200, batch_size=32, progress=False).parameters()
    assert same(got, epochs_loop(2))
    got = train_classifier(x, y, 3, seed=0, samples=250, batch_size=32, progress=False).parameters()
    assert same(got, epochs_loop(2, extra=50))


def test_progress_is_a_log_line_with_rate_and_time_left_when_not_on_a_terminal(caplog):
    from gan_models.progress import progress

    with caplog.at_level(logging.INFO, logger="gan_models.progress"):
        with progress(1000, "reading images", "img", every_s=0.0) as bar:
            bar.update(250)
            bar.update(250)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0].startswith("reading images: 250/1,000 img (25.0%), ") and "img/s" in lines[0] and "left" in lines[0]
    assert "500/1,000" in lines[-1] and "done in" in lines[-1]
    with caplog.at_level(logging.INFO, logger="gan_models.progress"):
        caplog.clear()
        with progress(10, "quiet", enabled=False) as bar:
            bar.update(10)
    assert not caplog.records


def test_clean_resize_equals_clean_fids_and_bilinear_is_pytorch_fids():
    from cleanfid.resize import make_resizer

    from gan_models.features.inception import clean_resize

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (3, 3, 32, 32), dtype=np.uint8)
    ours = clean_resize(torch.from_numpy(imgs))  # [-1, 1]
    theirs = make_resizer("PIL", False, "bicubic", (299, 299))
    for i in range(3):
        ref = theirs(imgs[i].transpose(1, 2, 0)).transpose(2, 0, 1)  # float [0, 255]
        np.testing.assert_allclose((ours[i].numpy() + 1) * 127.5, ref, rtol=0, atol=1e-3)
    # generated images in [-1, 1] are quantised first, as clean-fid quantises them
    as_model = torch.from_numpy(imgs).float() / 127.5 - 1
    assert torch.allclose(clean_resize(as_model), ours, atol=1e-6)


def test_every_stage_runs_its_networks_on_the_configured_device(project, monkeypatch):
    """The device each stage hands its networks, recorded: the configured one resolved
    (on this CPU machine, cpu; the default auto resolves to cuda where there is one)."""
    import gan_models.features.classifier as C
    import gan_models.variants.builder as B
    from tasks.config import load_params
    from tasks.evaluate import evaluate
    from tasks.export import export
    from tasks.prepare import prepare
    from tasks.select import select
    from tasks.train import train

    seen: dict[str, set] = {}

    def spy(module, name):
        fn = getattr(module, name)

        def wrapped(*a, **k):
            seen.setdefault(name, set()).add(str(k.get("device", "cpu")))
            return fn(*a, **k)
        monkeypatch.setattr(module, name, wrapped)

    for name in ("train_classifier", "features_and_logits"):
        spy(C, name)
    spy(B, "generator_from_checkpoint")
    for mod in ("tasks.select", "tasks.evaluate", "tasks.export"):
        monkeypatch.setattr(f"{mod}.generator_from_checkpoint", B.generator_from_checkpoint)
    doc = {**TINY, "device": "auto", "train": {**TINY["train"], "variants": {"mlp": TINY["train"]["variants"]["mlp"]}}}
    write_params(project / "params.yaml", doc)
    params = load_params(project / "params.yaml")
    prepare(params)
    train(params, "mlp", progress=False)
    select(params, "mlp")
    evaluate(params, "mlp")
    export(params, "mlp")
    expected = {"cuda" if torch.cuda.is_available() else "cpu"}
    assert {k: v for k, v in seen.items()} == {"train_classifier": expected, "features_and_logits": expected,
                                               "generator_from_checkpoint": expected}
    m = json.loads((project / "metrics/mlp.json").read_text())
    assert 0.5 < m["extractor_accuracy"] <= 1.0  # the classifier's held-out accuracy beside its FID
