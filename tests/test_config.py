"""params.yaml validation: every mistake is refused before any work, naming the key."""

from __future__ import annotations

import copy

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import TINY, cli, write_params
from tasks.config import ConfigError, apply_overrides, load_params


def _load(tmp_path, doc, overrides=None):
    return load_params(write_params(tmp_path / "p.yaml", doc), overrides)


def _with(path: str, value):
    doc = copy.deepcopy(TINY)
    node = doc
    *parents, last = path.split(".")
    for p in parents:
        node = node.setdefault(p, {})
    node[last] = value
    return doc


@pytest.mark.parametrize("path,value,expected", [
    ("train.batch_sise", 3, r"train\.batch_sise: unknown key; allowed here: steps, batch_size"),
    ("bogus", 1, r"bogus: unknown key; allowed here: seed, seeds, device, prepare, train"),
    ("train.batch_size", 0, r"train\.batch_size: Input should be greater than or equal to 1"),
    ("train.batch_size", "big", r"train\.batch_size: .*integer.*'big'"),
    ("prepare.dataset", "imagenet", r"unknown data set 'imagenet'; known: ring, grid"),
    ("prepare.heldout_fraction", 1.5, r"prepare\.heldout_fraction"),
    ("train.variants", {"mlp": {"lr_g": -0.1}}, r"train\.variants\.mlp: variant 'mlp': lr_g must be a number > 0"),
    ("train.variants", {"gan9": {}}, r"train\.variants\.gan9: unknown variant 'gan9'; known: mlp, mlp_deep, dcgan"),
    ("train.variants", {"d": {"preset": "dcgan", "generator": {"depth": 3}}}, r"generator 'dcgan' has no option 'depth'"),
    ("prepare.image_size", 30, r"train\.variants\.dcgan: .*cannot make 30x30"),
    ("train.variants", {}, r"train\.variants is empty"),
    ("train.variants", {"mlp": {"steps": 0}}, r"train\.variants\.mlp\.steps: must be an integer >= 1"),
])
def test_bad_settings_name_the_key(tmp_path, path, value, expected):
    with pytest.raises(ConfigError, match=expected):
        _load(tmp_path, _with(path, value))


def test_overrides_apply_yaml_values(tmp_path):
    p = _load(tmp_path, TINY, ["train.steps=7", "train.variants={mlp: {}}", "prepare.root=/x"])
    assert p.train.steps == 7 and p.variant_names == ["mlp"] and p.prepare.root == "/x"
    with pytest.raises(ConfigError, match="expected section.key=value"):
        apply_overrides({}, ["train.steps"])


def test_missing_params_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_params(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(tmp_path / "bad.yaml")


def test_cli_refuses_bad_settings_before_any_work(project):
    write_params(project / "params.yaml", _with("train.lr", 0.1))
    proc = cli("run", cwd=project, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "train.lr: unknown key" in proc.stderr
    assert "Traceback" not in proc.stderr
    for out in ("data", "models", "metrics", "samples", "mlflow.db"):
        assert not (project / out).exists(), f"{out} was created by a run that failed validation"
    write_params(project / "params.yaml", TINY)
    proc = cli("train", "--variant", "nope", cwd=project, timeout=120)
    assert proc.returncode == 2 and "--variant 'nope' is not in train.variants" in proc.stderr


_values = st.one_of(st.integers(-5, 5), st.floats(allow_nan=True), st.text(max_size=5), st.none(),
                    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))
_paths = st.sampled_from(["seed", "train.steps", "train.batch_size", "train.variants", "train.variants.mlp",
                          "train.variants.mlp.lr_g", "train.variants.dcgan.generator", "prepare.dataset",
                          "prepare.heldout_fraction", "select.n_samples", "evaluate.is_splits", "export",
                          "tracking.enabled", "prepare", "train.variants.mlp.loss"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(path=_paths, value=_values)
def test_generated_documents_are_accepted_or_refused_cleanly(tmp_path, path, value, capsys):
    """Through the command line: any document is either valid (exit 0) or refused with exit code
    2 and one `error:` message, never a traceback."""
    from flows.__main__ import main

    doc_path = write_params(tmp_path / "p.yaml", _with(path, value))
    code = main(["check", "--params", str(doc_path)])
    err = capsys.readouterr().err
    assert code in (0, 2)
    if code == 2:
        assert err.startswith("error: ") and len(err.strip()) > len("error: ")
    assert "Traceback" not in err


def test_the_device_and_mixed_precision_settings(project):
    import torch

    from tasks.config import ConfigError, load_params
    from tasks.runtime import resolve_device

    p = load_params(project / "params.yaml", ["device=auto", "train.amp=off"])  # a bare YAML off reads as false
    assert p.device == "auto" and p.train.amp == "off"
    assert resolve_device(p.device).type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert load_params(project / "params.yaml", ["train.amp=bf16"]).train.amp == "bf16"
    with pytest.raises(ConfigError, match=r"train.amp"):
        load_params(project / "params.yaml", ["train.amp=fp8"])
    with pytest.raises(ConfigError, match=r"device: 'tpu' is not a device"):
        load_params(project / "params.yaml", ["device=tpu"])


def test_fp16_with_a_penalty_inside_the_loss_is_refused_naming_bf16(project):
    """R1, WGAN-GP and the unrolled D take gradients inside the loss, which fp16 would underflow:
    refused before any work, naming the variant, the penalty and the setting to use; bf16 runs."""
    from tasks.config import ConfigError, load_params

    doc = {**TINY, "train": {**TINY["train"], "amp": "fp16",
                             "variants": {"mlp": {}, "r1": {"preset": "mlp", "tricks": {"r1": 1.0}}}}}
    write_params(project / "params.yaml", doc)
    with pytest.raises(ConfigError, match=r"variant 'r1'.s tricks.r1: .* set train.amp: bf16"):
        load_params(project / "params.yaml")
    load_params(project / "params.yaml", ["train.amp=bf16"])
    proc = cli("check", cwd=project)
    assert proc.returncode == 2 and "train.amp: bf16" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("old,new", [("train.device=cpu", "set device instead"),
                                     ("prepare.classifier_epochs=8", "set prepare.classifier_samples instead")])
def test_a_moved_setting_is_refused_naming_where_it_went(project, old, new):
    proc = cli("check", "--set", old, cwd=project)
    assert proc.returncode == 2 and new in proc.stderr and "Traceback" not in proc.stderr
