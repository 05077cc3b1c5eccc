"""The generator as an MLflow pyfunc model, logged "from code" (no pickled Python objects).

MLflow stores this file, the ``gan_models`` package and the selected checkpoint; loading runs
this file and reads the checkpoint with ``torch.load(weights_only=True)``.

    model = mlflow.pyfunc.load_model("models:/gan-generator@champion")
    images = model.predict(np.random.randn(16, model.metadata.metadata["z_dim"]).astype("float32"))

Input: noise, shape (n, z_dim) (a DataFrame or array), plus ``params={"labels": [...]}`` for a
conditional generator.  Output: float32 images (n, C, H, W) in [-1, 1], or points (n, 2).
"""

import mlflow
import numpy as np
from mlflow.pyfunc import PythonModel


class GeneratorModel(PythonModel):
    def load_context(self, context) -> None:
        from gan_models.checkpoint import load_checkpoint
        from gan_models.plugins import load_plugins
        from gan_models.variants import generator_from_checkpoint

        # The plugins registered when the model was logged (their code travels with the model):
        # a plugin's generator is rebuilt from its own registration.
        load_plugins((context.model_config or {}).get("plugins", []), entry_points=False)

        self.G, self.z_dim = generator_from_checkpoint(load_checkpoint(context.artifacts["checkpoint"]))
        self.G.eval()

    # np.ndarray: MLflow infers no schema from this hint (the logged signature gives the shapes) and
    # no longer asks for type hints each time the model is logged or loaded.
    def predict(self, context, model_input: np.ndarray, params=None):
        import torch

        from gan_models.networks import conditioning as cond
        from gan_models.training import generate

        z = torch.as_tensor(np.asarray(model_input, dtype=np.float32))
        if z.ndim != 2 or z.shape[1] != self.z_dim:
            raise ValueError(f"expected noise of shape (n, {self.z_dim}), got {tuple(z.shape)}")
        labels = (params or {}).get("labels")
        if labels is not None and len(labels) != len(z):  # the signature's default ([0]): none given
            labels = None
        y = cond.conditions_for(self.G, len(z))  # classes in turn; a multi-input G: real condition rows
        if labels is not None and cond.is_conditioned(self.G) and self.G.encoder.span(cond.LABEL) is not None:
            y = cond.with_column(self.G, cond.LABEL, y, torch.as_tensor(labels, dtype=y.dtype)[:, None])
        elif labels is not None and getattr(self.G, "n_classes", 0):
            y = torch.as_tensor(labels)
        return generate(self.G, z, y).numpy()


mlflow.models.set_model(GeneratorModel())
