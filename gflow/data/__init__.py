"""Data sources: the embedded digits, a folder of images, a folder of WAV files, tfds by
name (streamed), arrays in a .npz, or a source a plugin registers
(`gflow.Plugin.data_sources`)."""

import os
import zipfile

import numpy as np

from gflow.data.arrays import ArraySource
from gflow.data.audio import WavFolder, load_wav_folder
from gflow.data.digits import load_digits
from gflow.data.folder import load_folder
from gflow.data.images import ImageData, all_images, check_images
from gflow.data.mel import MelConfig
from gflow.data.pipeline import dequantize, distribute, eval_dataset, train_dataset
from gflow.data.shapes import event_shape, unknown_dataset
from gflow.data.source import DataSource
from gflow.data.tfds_source import (DatasetUnavailableError, TfdsAudio, TfdsImages,
                                    UnknownTfdsDataset, load_tfds)

__all__ = [
    "ArraySource", "DataSource", "all_images", "WavFolder", "DatasetUnavailableError", "ImageData", "check_images", "dequantize", "distribute",
    "eval_dataset", "event_shape", "load", "load_arrays", "load_digits", "load_folder",
    "TfdsAudio", "TfdsImages", "MelConfig", "load_tfds", "load_wav_folder", "mel_config", "plugin_sources", "train_dataset", "unknown_dataset",
]


def load_arrays(path, num_levels=256):
  """`train` and `test` image arrays from an .npz file."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f"No .npz file at {path!r}; set --config.data.path.")
  unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)
  try:
    archive = np.load(path)
  except unreadable as e:
    raise ValueError(f"{path}: not a readable .npz file ({e}).") from None
  with archive as f:
    missing = {"train", "test"} - set(f.files)
    if missing:
      raise ValueError(f"{path}: needs arrays 'train' and 'test'; missing {sorted(missing)}.")
    arrays = {}
    for key in ("train", "test"):
      try:
        arrays[key] = f[key]
      except unreadable as e:
        raise ValueError(f"{path}: array {key!r} cannot be read ({e}).") from None
  train = check_images(arrays["train"], f"{path}:train", num_levels)
  test = check_images(arrays["test"], f"{path}:test", num_levels)
  if train.shape[1:] != test.shape[1:]:
    raise ValueError(f"{path}: train images are {'x'.join(map(str, train.shape[1:]))} but test "
                     f"images are {'x'.join(map(str, test.shape[1:]))}; they must agree.")
  return ImageData(f"npz:{path}", train, test, num_levels)


def plugin_sources():
  """name → factory(data_config) of the data sources plugins register."""
  from gflow import registry
  return registry.data_sources()


def mel_config(data_config):
  """The `MelConfig` of `config.data` when `data.features` is "mel", else None."""
  features = data_config.get("features", "")
  if features not in ("", "mel"):
    raise ValueError(f"config.data.features must be '' (none) or 'mel'; got {features!r}.")
  if features != "mel":
    return None
  return MelConfig.from_config(data_config.get("mel") or {})


def load(data_config):
  """The `DataSource` that `config.data` names (`data.name`)."""
  name = data_config.name
  num_levels = data_config.get("num_levels", 256)
  if name == "digits":
    return load_digits(num_levels)
  if name == "folder":
    return load_folder(data_config.path, data_config.get("image_size", 0),
                       data_config.get("channels", 3))
  if name == "npz":
    return load_arrays(data_config.path, num_levels)
  if name == "wav_folder":
    return load_wav_folder(data_config.get("path", ""), data_config.get("segment_length", 0),
                           data_config.get("sample_rate", 0), mel_config(data_config))
  sources = plugin_sources()
  if name in sources:
    return sources[name](data_config)
  try:
    return load_tfds(name, data_config.get("data_dir", ""),
                     image_size=data_config.get("image_size", 0),
                     shuffle_buffer=data_config.get("shuffle_buffer", 10_000),
                     segment_length=data_config.get("segment_length", 0),
                     mel=mel_config(data_config))
  except UnknownTfdsDataset as e:
    raise unknown_dataset(name) from e
