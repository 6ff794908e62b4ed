"""Datasets: the embedded digits, a folder of images, tfds by name, or arrays in a .npz."""

import difflib
import os

import numpy as np

from gflow.data.digits import load_digits
from gflow.data.folder import load_folder
from gflow.data.images import ImageData, check_images
from gflow.data.pipeline import dequantize, distribute, eval_dataset, train_dataset
from gflow.data.tfds_source import SHAPES, SPLITS, DatasetUnavailableError, load_tfds

__all__ = [
    "DatasetUnavailableError", "ImageData", "check_images", "dequantize", "distribute",
    "eval_dataset", "event_shape", "load", "load_arrays", "load_digits", "load_folder",
    "load_tfds", "train_dataset",
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
    return load_tfds(name, data_config.get("data_dir", ""),
                     image_size=data_config.get("image_size", 0))
  except ValueError as e:
    raise _unknown(name) from e


def _unknown(name):
  near = difflib.get_close_matches(name, list(LOCAL) + list(SPLITS), n=1)
  hint = f" Did you mean {near[0]!r}?" if near else ""
  return ValueError(f"Unknown dataset {name!r}.{hint} Use one of {', '.join(LOCAL)} "
                    f"or a tfds name ({', '.join(SPLITS)}, …).")


def event_shape(data_config):
  """(H, W, C) of the images `config.data` names, without loading or downloading them."""
  name = data_config.name
  size = data_config.get("image_size", 0)
  if name == "digits":
    return (8, 8, 1)
  if name == "folder":
    if not size:
      raise ValueError("A folder's image shape is known only after reading it: set "
                       "--config.data.image_size (and data.channels) to resize to a size.")
    return (size, size, data_config.get("channels", 3))
  if name == "npz":
    return _npz_shape(data_config.path)
  if name in SHAPES:
    return (size, size, SHAPES[name][2]) if size else SHAPES[name]
  raise _unknown(name)


def _npz_shape(path):
  """The shape of the `train` array's images in an .npz file, read from its header."""
  import zipfile
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No .npz file at {path!r}; set --config.data.path.")
  with zipfile.ZipFile(path) as z, z.open("train.npy") as f:
    version = np.lib.format.read_magic(f)
    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
            else np.lib.format.read_array_header_2_0)
    shape = read(f)[0]
  return tuple(int(d) for d in shape[1:])
