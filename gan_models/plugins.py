"""Plugins: a user's own components, registered from the user's own module or installed package.

Two ways in, both calling the same registration API the built-ins use (``registries()`` below):

* ``plugins: [my_module, ...]`` in params.yaml: importable module names (a file next to
  params.yaml, or any installed module);
* the entry-point group ``gan_pipeline.plugins`` of an installed package, e.g. in its
  ``pyproject.toml``::

      [project.entry-points."gan_pipeline.plugins"]
      my_gans = "my_gans"            # a module: importing it registers
      other = "my_gans.extra:setup"  # or a function to call

A plugin module registers at import time, for example::

    from gan_models.variants import GENERATORS, register_variant

    def my_generator(z_dim, data_shape, out_activation, n_classes, width: int = 32): ...
    GENERATORS.register("my_gen", my_generator, "one line saying what it is")

Every entry remembers which plugin registered it (``Entry.source``); a plugin's source files and
the names it registered are what the pipeline needs to fingerprint the stages that use it.
A plugin that cannot be imported, or whose registration is refused (a duplicate name, a missing
description, a builder without the arguments its kind is called with), raises ``PluginError``
naming the plugin.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata as md
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from .files import sha256_file
from .registry import LOADED_PLUGINS, Registry, registering_as

ENTRY_POINT_GROUP = "gan_pipeline.plugins"


class PluginError(ValueError):
    """A plugin cannot be loaded; the message names the plugin and the fix."""


def registries() -> dict[str, Registry]:
    """Every registry a plugin may add to, by the kind of component it holds."""
    from . import data, features, losses, metrics, networks, variants

    return {"generator": networks.GENERATORS, "translator": networks.TRANSLATORS,
            "discriminator": networks.DISCRIMINATORS, "loss": losses.LOSSES, "variant": variants.VARIANTS,
            "augmentation": losses.AUGMENTATIONS, "dataset": data.DATASETS, "extractor": features.EXTRACTORS,
            "metric": metrics.METRICS, "score": metrics.SCORES}


@dataclass(frozen=True)
class Plugin:
    name: str  # the module name (params.yaml) or the entry point's name
    target: str  # what was loaded: "module" or "module:function"
    origin: str  # "params.yaml" or "entry point"
    distribution: str | None  # the installed package that holds it, if any
    version: str | None
    root: str  # the folder its source files are listed under
    files: tuple[str, ...]  # its source files, relative to ``root``
    provides: tuple[tuple[str, str], ...]  # (kind, name) of every component it registered

    @property
    def names(self) -> set[str]:
        return {n for _, n in self.provides}

    def paths(self) -> list[Path]:
        return [Path(self.root) / f for f in self.files]

    def code_hashes(self) -> dict[str, str]:
        """``plugin:<name>/<file>`` -> SHA-256 of each source file, independent of where the plugin
        is installed (a moved virtual environment does not change it)."""
        return {f"plugin:{self.name}/{f}": sha256_file(Path(self.root) / f) for f in self.files}

    def code_sha256(self) -> str:
        h = hashlib.sha256()
        for k, v in sorted(self.code_hashes().items()):
            h.update(f"{k}\0{v}\n".encode())
        return h.hexdigest()

    def describe(self) -> str:
        pkg = f"{self.distribution}=={self.version}" if self.distribution else "not an installed package"
        return f"{self.name} ({self.origin}: {self.target}; {pkg})"


_LOADED: dict[str, Plugin] = LOADED_PLUGINS  # by plugin name: a module is imported (and registers) once per process


def loaded() -> list[Plugin]:
    return list(_LOADED.values())


def _source_files(module: Any) -> tuple[str, tuple[str, ...]]:
    """(root, files): every .py file of a package, or the module's own file."""
    paths = list(getattr(module, "__path__", []) or [])
    if paths:
        root = Path(paths[0]).resolve()
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*.py") if "__pycache__" not in p.parts)
        return str(root), tuple(files)
    f = getattr(module, "__file__", None)
    if not f:
        return "", ()
    p = Path(f).resolve()
    return str(p.parent), (p.name,)


def _distribution(module_name: str) -> tuple[str | None, str | None]:
    top = module_name.split(".")[0]
    for dist in md.packages_distributions().get(top, []):
        try:
            return dist, md.version(dist)
        except md.PackageNotFoundError:
            continue
    return None, None


def _load_one(name: str, target: str, origin: str, dist: tuple[str | None, str | None] | None,
              how_to_fix: str) -> Plugin:
    if name in _LOADED:
        return _LOADED[name]
    for other in _LOADED.values():  # the same code under two names (an entry point and params.yaml)
        if other.target == target:
            return other
    module_name, _, func = target.partition(":")
    before = {kind: set(reg.names()) for kind, reg in registries().items()}
    try:
        with registering_as(name):
            module = importlib.import_module(module_name)
            if func:
                fn = module
                for part in func.split("."):
                    fn = getattr(fn, part)
                fn()
    except ModuleNotFoundError as e:
        if e.name and (e.name == module_name or module_name.startswith(e.name + ".")):
            raise PluginError(f"plugin {name!r}: no module named {module_name!r} ({origin}); {how_to_fix}") from None
        raise PluginError(f"plugin {name!r}: importing {module_name!r} failed: {type(e).__name__}: {e}") from None
    except Exception as e:  # the plugin's own error, or a registration the registry refused
        sys.modules.pop(module_name, None)
        raise PluginError(f"plugin {name!r} ({origin}: {target}) failed to load: {type(e).__name__}: {e}") from None
    provides = tuple((kind, n) for kind, reg in registries().items() for n in reg.names()
                     if n not in before[kind] and reg.entry(n).source == name)
    if not provides:
        raise PluginError(f"plugin {name!r} ({origin}: {target}) registered no component; a plugin registers "
                          "at import time (see gan_models/plugins.py and docs/how-to/plugins.md)")
    # The whole top-level package is the plugin's code, whichever of its modules the target names.
    root, files = _source_files(sys.modules.get(module_name.split(".")[0], module))
    distribution, version = dist if dist is not None else _distribution(module_name)
    plugin = Plugin(name, target, origin, distribution, version, root, files, provides)
    _LOADED[name] = plugin
    return plugin


def load_plugins(modules: Iterable[str] = (), entry_points: bool = True) -> list[Plugin]:
    """Import the plugins named in params.yaml and (``entry_points``) every installed package's
    ``gan_pipeline.plugins`` entry point; returns all plugins loaded in this process."""
    for module in modules:
        if not isinstance(module, str) or not module.strip():
            raise PluginError(f"plugins: each entry must be a module name, got {module!r}")
        _load_one(module, module, "params.yaml", None,
                  "put the module next to params.yaml or install its package, or remove it from plugins:")
    if entry_points:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = (ep.dist.name, ep.dist.version) if ep.dist is not None else None
            _load_one(ep.name, ep.value, "entry point", dist,
                      f"the package {dist[0] if dist else '?'} declares it: reinstall or uninstall that package")
    return loaded()


