"""Data sets, one module per family; each registers its loaders with what is known of them.

``base``: what a variant is built for (``DataInfo``), what a loader returns (``RawData``), the
registry and each data set's facts; ``arrays``: content hash, split, resize, ``.npz`` files;
``mixtures``, ``embedded``, ``folder``, ``translation``, ``stacked``: the loaders;
``attributes``: what prepare measures on grey images for multi-input conditioning.
"""

from . import mixtures, embedded, folder, translation, stacked  # noqa: F401  (registration order)
from .arrays import (content_hash, load_arrays, load_rows, resize_images, save_arrays, split_indices,
                     value_range, write_rows)
from .base import DATASETS, LOADER_ARGS, DataError, DataFacts, DataInfo, RawData, to_model_range
from .folder import IMAGE_SUFFIXES, read_inputs, translation_folder_files
from .stacked import stacked_digits_of, stacked_label

__all__ = ["content_hash", "load_arrays", "load_rows", "write_rows", "resize_images", "save_arrays", "split_indices", "value_range", "DATASETS",
           "LOADER_ARGS", "DataError", "DataFacts", "DataInfo", "RawData", "to_model_range", "IMAGE_SUFFIXES",
           "read_inputs", "translation_folder_files", "stacked_digits_of", "stacked_label"]
