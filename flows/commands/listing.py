"""``python -m flows variants`` and ``python -m flows datasets``: what the registries hold,
the plugins' entries marked, and the settings every variant takes."""

from __future__ import annotations

import argparse


def _entry_line(e, width: int = 16) -> str:
    from gan_models.registry import BUILTIN

    return f"  {e.name:<{width}} {e.description}" + ("" if e.source == BUILTIN else f"  [plugin {e.source}]")


def variants(args: argparse.Namespace) -> int:
    from .settings import plugins_of

    plugins_of(args.params)
    from gan_models import variants as V
    from gan_models.data.attributes import ATTRIBUTES
    from gan_models.features import EXTRACTORS
    from gan_models.losses import AUGMENTATIONS
    from gan_models.metrics import METRICS
    from gan_models.plugins import loaded

    print("Variants (use as keys of train.variants in params.yaml; `preset:` picks one under another name):")
    for e in V.VARIANTS:
        print(_entry_line(e))
    for title, reg in (("Generator architectures (generator.arch)", V.GENERATORS),
                       ("Translation generators (generator.arch with loss pix2pix or cyclegan)", V.TRANSLATORS),
                       ("Discriminator architectures (discriminator.arch)", V.DISCRIMINATORS),
                       ("Losses (loss.name)", V.LOSSES),
                       ("Augmentation policies (tricks.augment)", AUGMENTATIONS),
                       ("Feature extractors (prepare.extractor)", EXTRACTORS),
                       ("Metrics (evaluate.metrics)", METRICS)):
        print(f"\n{title}:")
        for e in reg:
            print(_entry_line(e))
    print("\nSettings of any variant (train.variants.<name>.KEY):")
    for key, what in {**V.VARIANT_KEYS, **V.TOP_LEVEL_KEYS}.items():
        print(f"  {key:<16} {what}")
    print("\nOptions of any image discriminator (discriminator.KEY):")
    for key, what in V.ANY_DISCRIMINATOR.items():
        print(f"  {key:<16} {what}")
    print("\nSeveral conditioning inputs, any image variant (conditioning: {inputs: [...], embed: N}):")
    for key, what in V.MULTI_CONDITIONING.items():
        print(f"  {key:<16} {what}")
    print("\nAttributes prepare measures on grey images (conditioning.inputs; metrics attr_r_<name>):")
    for e in ATTRIBUTES:
        print(_entry_line(e))
    plugins = loaded()
    print("\nPlugins: " + ("; ".join(p.describe() for p in plugins) if plugins else
                           "none (params.yaml `plugins:` or the `gan_pipeline.plugins` entry point adds some)"))
    return 0


def datasets(args: argparse.Namespace) -> int:
    from .settings import plugins_of

    plugins_of(args.params)
    from gan_models.data import DATASETS

    print("Data sets (prepare.dataset):")
    for e in DATASETS:
        print(_entry_line(e, 14))
    return 0


def main(args: argparse.Namespace) -> int:
    return variants(args) if args.command == "variants" else datasets(args)
