"""Datasets: the embedded digits, a folder of images, tfds by name, or arrays in a .npz."""

import difflib
import os

import numpy as np

from gflow.data.digits import load_digits
from gflow.data.folder import load_folder
from gflow.data.images import ImageData, check_images
from gflow.data.pipeline import dequantize, distribute, eval_dataset, train_dataset
from gflow.data.tfds_source import DatasetUnavailableError, load_tfds, SPLITS

__all__ = [
    "DatasetUnavailableError", "ImageData", "check_images", "dequantize", "distribute",
    "eval_dataset", "load", "load_arrays", "load_digits", "load_folder", "load_tfds",
    "train_dataset",
]

LOCAL = ("digits", "folder", "npz")


def load_arrays(path, num_levels=256):
  """`train` and `test` image arrays from an .npz file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No .npz file at {path!r}; set --config.data.path.")
  with np.load(path) as f:
    missing = {"train", "test"} - set(f.files)
    if missing:
      raise ValueError(f"{path}: needs arrays 'train' and 'test'; missing {sorted(missing)}.")
    return ImageData(f"npz:{path}", check_images(f["train"], f"{path}:train", num_levels),
                     check_images(f["test"], f"{path}:test", num_levels), num_levels)


def load(data_config):
  """The `ImageData` that `config.data` names."""
  name = data_config.name
  num_levels = data_config.get("num_levels", 256)
  if name == "digits":
    return load_digits(num_levels)
  if name == "folder":
    return load_folder(data_config.path, data_config.get("image_size", 0),
                       data_config.get("channels", 3))
  if name == "npz":
    return load_arrays(data_config.path, num_levels)
  try:
    return load_tfds(name, data_config.get("data_dir", ""))
  except ValueError as e:
    near = difflib.get_close_matches(name, list(LOCAL) + list(SPLITS), n=1)
    hint = f" Did you mean {near[0]!r}?" if near else ""
    raise ValueError(f"Unknown dataset {name!r}.{hint} Use one of {', '.join(LOCAL)} "
                     f"or a tfds name ({', '.join(SPLITS)}, …).") from e
