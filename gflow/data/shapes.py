"""Image shapes from `config.data` alone: nothing is loaded, decoded or downloaded.

`event_shape(config.data)` is the (H, W, C) that `gflow.data.load(config.data)`
would give, so that a model can be built (e.g. by gflow-info) without its data:

* `digits`: (8, 8, 1).
* a tfds name (`cifar10`, `downsampled_imagenet/32x32`, `downsampled_imagenet/64x64`,
  `celeb_a`, `mnist`): the stored shape, or (image_size, image_size, C) when
  `data.image_size` is set (the loader centre-crops and resizes; CelebA at 64 gives
  (64, 64, 3)).
* `folder`: (image_size, image_size, channels); with image_size 0 the loader keeps
  the images' own size, read here from the first image's header.
* `npz`: the `train` array's shape, read from its .npy header inside the zip.
* `wav_folder`, `ljspeech`: (segment_length,), the training segment.
"""

import difflib
import os
import zipfile

import numpy as np

from gflow.data.tfds_source import AUDIO_DATASETS, SHAPES, SPLITS

__all__ = ["LOCAL", "event_shape", "unknown_dataset"]

LOCAL = ("digits", "folder", "npz", "wav_folder")
DIGITS_SHAPE = (8, 8, 1)


def unknown_dataset(name):
  """The ValueError for a dataset name gflow does not know, with the nearest known one."""
  from gflow import registry
  plugins = sorted(registry.data_sources())
  near = difflib.get_close_matches(name, list(LOCAL) + plugins + list(SPLITS), n=1)
  hint = f" Did you mean {near[0]!r}?" if near else ""
  extra = f", a plugin's source ({', '.join(plugins)})" if plugins else ""
  return ValueError(f"Unknown dataset {name!r}.{hint} Use one of {', '.join(LOCAL)}{extra} "
                    f"or a tfds name ({', '.join(SPLITS)}, …).")


def event_shape(data_config):
  """(H, W, C) of the images `data_config` (a `config.data`) names, read from the
  config alone (for `npz` and an unsized `folder`, from one file header).

  Raises ValueError for an unknown dataset name (naming the nearest known one), a
  negative `image_size` or a bad `channels`; FileNotFoundError for a missing path.
  """
  name = data_config.name
  size = data_config.get("image_size", 0) or 0
  if not isinstance(size, int) or size < 0:
    raise ValueError(f"config.data.image_size must be a whole number >= 0 (0: keep the "
                     f"stored size); got {size!r}.")
  if name == "digits":
    return DIGITS_SHAPE
  if name == "folder":
    channels = data_config.get("channels", 3)
    if channels not in (1, 3):
      raise ValueError(f"config.data.channels must be 1 or 3; got {channels!r}.")
    if size:
      return (size, size, channels)
    return _folder_shape(data_config.get("path", ""), channels)
  if name == "npz":
    return _npz_shape(data_config.get("path", ""))
  if name == "wav_folder" or name in AUDIO_DATASETS:
    length = data_config.get("segment_length", 0)
    if not isinstance(length, int) or length < 1:
      raise ValueError(f"config.data.segment_length must be a whole number of samples >= 1; "
                       f"got {length!r}.")
    return (length,)
  if name in SHAPES:
    return (size, size, SHAPES[name][2]) if size else SHAPES[name]
  from gflow import registry
  sources = registry.data_sources()
  if name in sources:  # a plugin's source: it says its own shape
    return tuple(sources[name](data_config).event_shape)
  raise unknown_dataset(name)


def _folder_shape(path, channels):
  """(H, W, channels) of the first image under `path` (its header only), which is
  what the loader keeps when `image_size` is 0 (it then requires every image to
  have that size)."""
  from PIL import Image

  from gflow.data.folder import IMAGE_EXTENSIONS
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"Image folder {path!r} does not exist. Set --config.data.path "
                            "to a folder of images, or --config.data.image_size to the size "
                            "the images are resized to.")
  for root, dirs, names in os.walk(path):
    dirs.sort()  # a fixed order; the first image found is enough
    for f in sorted(names):
      if f.lower().endswith(IMAGE_EXTENSIONS):
        file = os.path.join(root, f)
        try:
          with Image.open(file) as im:  # reads the header, not the pixels
            w, h = im.size
        except OSError as e:
          raise ValueError(f"Cannot read the size of {file!r} ({e}); set "
                           "--config.data.image_size to the size the images are resized to.")
        return (h, w, channels)
  raise ValueError(f"Image folder {path!r} holds no images ({', '.join(IMAGE_EXTENSIONS)}); "
                   "set --config.data.image_size to say the size the images will have.")


def _npz_shape(path):
  """The image shape (H, W, C) of the `train` array of an .npz file, read from the
  array's .npy header (np.load of an .npz would decompress the whole array)."""
  if not path or not os.path.isfile(path):
    raise FileNotFoundError(f"No .npz file at {path!r}; set --config.data.path.")
  try:
    with zipfile.ZipFile(path) as z:
      if "train.npy" not in z.namelist():
        names = sorted(n[:-4] for n in z.namelist() if n.endswith(".npy"))
        raise ValueError(f"{path}: needs arrays 'train' and 'test'; it holds {names}.")
      with z.open("train.npy") as f:
        version = np.lib.format.read_magic(f)
        read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                else np.lib.format.read_array_header_2_0)  # 2.0 and 3.0 share the layout
        shape = read(f)[0]
  except zipfile.BadZipFile:
    raise ValueError(f"{path} is not an .npz file (np.savez/np.savez_compressed); "
                     "config.data.name='npz' needs arrays 'train' and 'test'.") from None
  if len(shape) == 3:  # [N, H, W]: the loader adds a channel axis
    shape = (*shape, 1)
  if len(shape) != 4:
    raise ValueError(f"{path}:train: expected images [N, H, W, C] (or [N, H, W]); "
                     f"got shape {tuple(shape)}.")
  return tuple(int(d) for d in shape[1:])
