"""The GAN core: data sets, networks, losses, variants, the training loop and metrics.

Nothing in this package knows about Prefect, MLflow or DVC.
"""

__version__ = "0.1.0"
