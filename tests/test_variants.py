"""Every registered variant: builds at each supported shape, maps noise to the right shape and
range, takes a finite training step, and round-trips through a checkpoint exactly."""

from __future__ import annotations

import pytest
import torch

from gan_models import checkpoint as ck
from gan_models import variants as V
from gan_models.networks import conditioning as C
from gan_models.data.attributes import ATTRIBUTES
from gan_models.training import Trainer, generate

IMAGE_SHAPES = [(1, 28, 28), (3, 32, 32), (1, 64, 64)]
POINT_SHAPE = (2,)


def _shapes(name):
    spec = V.resolve(name).to_dict()
    shapes = list(IMAGE_SHAPES)
    if isinstance(spec["conditioning"], dict):  # measured inputs: grey images only
        return [s for s in shapes if s[0] == 1]
    if spec["generator"]["arch"] == "mlp" and spec["discriminator"]["arch"] == "mlp":
        shapes.append(POINT_SHAPE)
    return shapes


# Generators from noise; the translation presets (pix2pix, cyclegan) map images to images and have
# their own tests (tests/test_translation.py, tests/test_translation_nets.py).
NOISE_VARIANTS = [n for n in V.VARIANTS.names() if V.VARIANTS.get(n).translation is None]
CASES = [(n, s) for n in NOISE_VARIANTS for s in _shapes(n)]


MEASURED = tuple((n, 1) for n in ATTRIBUTES.names())  # what prepare measures on grey images


def _info(shape):
    grey = len(shape) == 3 and shape[0] == 1
    return V.DataInfo("image" if len(shape) == 3 else "points", shape, 10, inputs=MEASURED if grey else ())


def _conditions(gan, n):
    """What the trainer takes: labels, or for a multi-input variant rows of its inputs."""
    if not gan.conditioned:
        return torch.arange(n) % 10
    values = {k: torch.rand(n).numpy() + 1 for k, _ in MEASURED}
    return C.table(gan.G.inputs, (torch.arange(n) % 10).numpy(), values)


@pytest.mark.parametrize("name,shape", CASES, ids=[f"{n}-{'x'.join(map(str, s))}" for n, s in CASES])
def test_variant_builds_and_maps_noise_to_data_shape(name, shape):
    torch.manual_seed(0)
    gan = V.build(V.resolve(name), _info(shape))
    n = 4  # a multiple of every pack size
    z = torch.randn(n, gan.z_dim)
    y = C.conditions_for(gan.G, n)
    x = generate(gan.G, z, y)
    assert x.shape == (n, *shape)
    if len(shape) == 3:
        assert x.min() >= -1 and x.max() <= 1  # Tanh output
    out = gan.D(x, y if gan.spec.conditioning == "input" or gan.conditioned else None)
    assert out.shape == (n // gan.loss.tricks.pack,)


@pytest.mark.parametrize("name", NOISE_VARIANTS)
def test_variant_takes_a_finite_step_and_checkpoint_reproduces_outputs(name, tmp_path):
    shape = (1, 28, 28) if V.resolve(name).generator.name != "mlp" else (1, 8, 8)
    spec = V.resolve(name).to_dict()
    for part in ("generator", "discriminator"):  # keep the test fast: narrow networks
        if "width" in spec[part]:
            spec[part]["width"] = 8
    spec = V.VariantSpec.parse(name, spec)
    torch.manual_seed(0)
    gan = V.build(spec, _info(shape))
    data = torch.randint(0, 256, (32, *shape), dtype=torch.uint8)
    trainer = Trainer(gan, data, batch_size=8, seed=0, conditions=_conditions(gan, 32))
    before = [p.detach().clone() for p in gan.G.parameters()]
    stats = trainer.train_step(measure=True)
    assert all(torch.isfinite(torch.tensor(v)) for v in stats.values())
    assert {"loss/D", "loss/G", "D/real", "D/fake", "grad_norm/D", "grad_norm/G"} <= set(stats)
    assert any(not torch.equal(a, b) for a, b in zip(before, gan.G.parameters())), "G did not change"

    ck.save_checkpoint(tmp_path, trainer.step, {**trainer.state_dict(), "variant": name, "spec": spec.to_dict(),
                                               "data": {"kind": "image", "shape": list(shape), "n_classes": 10,
                                                        "inputs": [list(i) for i in _info(shape).inputs]},
                                               "train": {"steps": trainer.step}})
    entry = ck.read_index(tmp_path)[-1]
    loaded = ck.load_checkpoint(tmp_path / entry["file"], entry["sha256"])
    loaded["train"] = {"steps": trainer.step}
    G2, z_dim = V.generator_from_checkpoint(loaded)
    z = torch.randn(4, z_dim)
    y = C.conditions_for(gan.G, 4)  # a multi-input G: rows of its bank, restored from the checkpoint
    if gan.conditioned:
        assert torch.equal(C.conditions_for(G2, 4), y) and y[:, 1:].abs().sum() > 0
    expected = generate(trainer.G_ema if trainer.G_ema is not None else gan.G, z, y)
    assert torch.equal(expected, generate(G2, z, y))


def test_resolve_spec_merges_and_replaces_components():
    spec = V.resolve("mine", {"preset": "dcgan", "loss": {"name": "wgan_gp"},
                                   "discriminator": {"spectral_norm": True}, "lr_d": 4e-4}).to_dict()
    assert spec["loss"] == {"name": "wgan_gp"}  # another loss: its own defaults
    assert spec["conditioning"] == "none" and spec["tricks"] == {} and spec["ema"] == 0.0
    assert spec["discriminator"] == {"arch": "dcgan", "width": 64, "spectral_norm": True}
    assert spec["lr_d"] == 4e-4 and spec["lr_g"] == 2e-4


@pytest.mark.parametrize("overrides,match", [
    ({"preset": "nope"}, "unknown variant 'nope'; known: mlp"),
    ({"generatr": {}}, "unknown key 'generatr'"),
    ({"loss": {"name": "bogus"}}, "unknown loss 'bogus'"),
    ({"lr_g": -1.0}, "lr_g must be a number > 0"),
    ({"z_dim": 0}, "z_dim must be a positive integer"),
    ({"betas": [0.5]}, "betas must be two numbers"),
])
def test_bad_variant_settings_are_refused_with_the_key(overrides, match):
    with pytest.raises(ValueError, match=match):
        V.resolve("x", {"preset": "mlp", **overrides} if "preset" not in overrides else overrides)


def test_bad_component_options_name_the_option():
    spec = V.resolve("x", {"preset": "dcgan", "generator": {"widht": 3}})
    with pytest.raises(ValueError, match="has no option 'widht'; allowed: self_attention, spectral_norm, width"):
        V.build(spec, _info((1, 28, 28)))
    spec = V.resolve("x", {"preset": "dcgan", "generator": {"width": "wide"}})
    with pytest.raises(ValueError, match="'width' must be of type int"):
        V.build(spec, _info((1, 28, 28)))
    with pytest.raises(ValueError, match="cannot make 30x30 images"):
        V.build(V.resolve("dcgan"), _info((1, 30, 30)))


def test_registry_refuses_duplicates_and_lists_known_names():
    with pytest.raises(ValueError, match="already registered"):
        V.VARIANTS.register("mlp", {}, "again")
    with pytest.raises(ValueError, match="known: .*dcgan"):
        V.VARIANTS.get("nope")
