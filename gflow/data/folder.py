"""A folder of images as a dataset."""

import os

import numpy as np

from gflow.data.images import ImageData, check_images, split_fixed

__all__ = ["load_folder", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
TEST_FRACTION = 0.1


def _read(path, image_size, mode):
  from PIL import Image, UnidentifiedImageError
  try:
    with Image.open(path) as im:
      return _prepare(im.convert(mode), image_size)
  except (UnidentifiedImageError, OSError, SyntaxError) as e:  # SyntaxError: a broken PNG
    raise ValueError(f"{path}: not a readable image ({e}). Remove or replace the file.") \
        from None


def _prepare(im, image_size):
  """The image as an array, centre-cropped to a square and resized if `image_size`."""
  from PIL import Image
  if image_size:
    w, h = im.size
    s = min(w, h)
    im = im.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    im = im.resize((image_size, image_size), Image.BICUBIC)
  return np.asarray(im)


def load_folder(path, image_size=0, channels=3, test_fraction=TEST_FRACTION):
  """Every image under `path` (recursively), centre-cropped and resized to
  `image_size` (0 keeps the size; then all images must agree), with a fixed
  10 % test split."""
  if not path or not os.path.isdir(path):
    raise FileNotFoundError(f"Image folder {path!r} does not exist. Set "
                            "--config.data.path to a folder of images.")
  files = sorted(os.path.join(root, f) for root, _, names in os.walk(path)
                 for f in names if f.lower().endswith(IMAGE_EXTENSIONS))
  if len(files) < 2:
    raise ValueError(f"Image folder {path!r} holds {len(files)} images "
                     f"({', '.join(IMAGE_EXTENSIONS)}); need at least 2 for a train/test split.")
  if channels not in (1, 3):
    raise ValueError(f"channels must be 1 or 3; got {channels}.")
  mode = "L" if channels == 1 else "RGB"
  images = [_read(f, image_size, mode) for f in files]
  shapes = {}
  for f, im in zip(files, images):
    shapes.setdefault(im.shape, f)
  if len(shapes) > 1:
    examples = "; ".join(f"{'x'.join(map(str, shape))} ({f})"
                         for shape, f in sorted(shapes.items())[:3])
    raise ValueError(f"Images in {path!r} have different sizes: {examples}…; set "
                     "--config.data.image_size to resize them.")
  train, test = split_fixed(check_images(np.stack(images), f"folder {path}"), test_fraction)
  return ImageData(f"folder:{path}", train, test)
