"""The settings reference, generated from the settings schema (``tasks.config``) and the component
registries: every key params.yaml takes, its type, default and meaning.  The documentation site's
settings page is this module's output (``docs/hooks.py``), and a test checks every setting that
a message or a help text names against ``setting_names()``, so neither can drift from the code.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import typing
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel


@dataclass(frozen=True)
class Setting:
    key: str  # dotted: train.batch_size; variant keys as train.variants.<name>.KEY
    type: str
    default: Any
    description: str


def _type_name(annotation: Any) -> str:
    text = str(annotation).replace("typing.", "")
    return text.removeprefix("<class '").removesuffix("'>")


def _model_rows(model: type[BaseModel], prefix: str = "") -> list[Setting]:
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        sub = field.annotation if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel) else None
        if sub is not None:
            rows += _model_rows(sub, key + ".")
            continue
        default = field.get_default(call_default_factory=True)
        rows.append(Setting(key, _type_name(field.annotation), default, field.description or ""))
    return rows


def _options(fn: Any, fixed: tuple[str, ...] | None) -> dict[str, Any]:
    """A builder's options: its parameters with defaults, less the ones the pipeline passes."""
    params = inspect.signature(fn).parameters
    return {n: p.default for n, p in params.items()
            if n not in (fixed or ()) and p.default is not inspect.Parameter.empty}


def variant_rows() -> list[Setting]:
    """The keys of a ``train.variants.<name>`` map, and the options of every registered component."""
    from gan_models import variants as V
    from gan_models.losses import Tricks

    base = "train.variants.<name>."
    rows = [Setting(base + k, "", None, what) for k, what in {**V.VARIANT_KEYS, **V.TOP_LEVEL_KEYS}.items()]
    for f in dataclasses.fields(Tricks):
        rows.append(Setting(f"{base}tricks.{f.name}", _type_name(f.type), f.default, ""))
    for k, what in V.MULTI_CONDITIONING.items():
        rows.append(Setting(f"{base}conditioning.{k}", "", None, what))
    for k, what in V.ANY_DISCRIMINATOR.items():
        rows.append(Setting(f"{base}discriminator.{k}", "int", 1, what))
    for part, regs in (("generator", (V.GENERATORS, V.TRANSLATORS)), ("discriminator", (V.DISCRIMINATORS,)),
                       ("loss", (V.LOSSES,))):
        tag = "name" if part == "loss" else "arch"
        names = [e.name for reg in regs for e in reg]
        rows.append(Setting(f"{base}{part}.{tag}", "str", None, f"one of {', '.join(names)}"))
        for reg in regs:
            for e in reg:
                for opt, default in _options(e.value, reg.fixed).items():
                    rows.append(Setting(f"{base}{part}.{opt}", type(default).__name__, default,
                                        f"option of {part} {e.name!r}"))
    return rows


def settings_rows() -> list[Setting]:
    from .config import Params

    return _model_rows(Params) + variant_rows()


# The short forms messages use for a variant's keys (``tricks.pack``, ``loss.n_critic``) stand for
# ``train.variants.<name>.``-prefixed ones.
VARIANT_PARTS = ("tricks", "loss", "generator", "discriminator", "conditioning")


def setting_names() -> set[str]:
    """Every dotted name a message may use for a setting: full keys, their sections, and the
    short forms of a variant's keys."""
    names = set()
    for row in settings_rows():
        parts = row.key.split(".")
        names |= {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
        if row.key.startswith("train.variants.<name>."):
            short = row.key.removeprefix("train.variants.<name>.")
            names.add(short)
    return names


def markdown() -> str:
    """The settings reference as a Markdown page: a table per section."""
    rows = settings_rows()
    out = ["# Settings reference", "",
           "Every key `params.yaml` takes, generated from the settings schema (`tasks/config.py`) and the "
           "component registries (`python -m flows variants`), so this page cannot drift from the code. "
           "Unknown keys, wrong types and out-of-range values stop every command before any work, naming the key.",
           ""]
    section = None
    for r in rows:
        head = r.key.split(".")[0] if not r.key.startswith("train.variants.") else "train.variants.<name>"
        if r.key.startswith("train.variants.<name>.") and r.key.count(".") > 3:
            head = "train.variants.<name>." + r.key.split(".")[3]
        if head != section:
            section = head
            out += ["", f"## `{head}`", "", "| key | type | default | meaning |", "|---|---|---|---|"]
        default = "" if r.default is None and not r.type else json.dumps(r.default, default=str)
        what = r.description.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")
        out.append(f"| `{r.key}` | {r.type.replace('|', 'or')} | `{default}` | {what} |")
    return "\n".join(out) + "\n"


__all__ = ["Setting", "settings_rows", "setting_names", "markdown", "typing"]
