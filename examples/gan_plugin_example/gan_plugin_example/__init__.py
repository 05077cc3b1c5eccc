"""An example plugin for gan-pipeline, registered through the same calls the built-ins use.

Installed (``pip install examples/gan_plugin_example``), its entry point makes the pipeline
import this module; then ``python -m flows variants`` lists its components as
``[plugin gan_plugin_example]`` and params.yaml can name them:

    train:
      variants:
        film_cgan: {}        # the preset below
        dcgan: {loss: {name: ls_targets, a: -1.0, b: 1.0, c: 0.0}}   # the loss on a built-in
"""

from gan_models.variants import GENERATORS, LOSSES, register_variant

from .film import FiLMGenerator
from .losses import LeastSquaresTargets


def _film_generator(z_dim, data_shape, out_activation, n_classes, hidden: list = (256, 256),
                    embed_dim: int = 32):
    # The pipeline passes z_dim, data_shape, out_activation and n_classes; the other parameters
    # are options a user sets under `generator:` in params.yaml (their defaults give their types).
    return FiLMGenerator(z_dim, data_shape, hidden=list(hidden), out_activation=out_activation,
                         n_classes=n_classes, embed_dim=embed_dim)


GENERATORS.register("film_mlp", _film_generator,
                    "MLP G whose hidden layers are scaled and shifted per class (FiLM, Perez et al. 2018)")
LOSSES.register("ls_targets", LeastSquaresTargets,
                "least squares with targets a (fake), b (real), c (G's aim) (Mao et al. 2017, eq. 2); "
                "defaults -1, 1, 0")
register_variant("film_cgan", "conditional GAN: FiLM MLP generator, label-conditioned MLP D, "
                 "least squares with targets -1/1/0", {
                     "generator": {"arch": "film_mlp", "hidden": [256, 256]},
                     "discriminator": {"arch": "mlp", "hidden": [256]},
                     "loss": {"name": "ls_targets"}, "conditioning": "input", "z_dim": 64,
                     "optimizer": "adam", "lr_g": 2e-4, "lr_d": 2e-4, "betas": [0.5, 0.999]})
