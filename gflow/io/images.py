"""Image grids written as PNG."""

import math

import numpy as np

__all__ = ["make_grid", "save_png"]


def make_grid(images, ncols=None, pad=1):
  """uint8 [N, H, W, C] → one uint8 [rows·(H+pad)+pad, cols·(W+pad)+pad, C] grid."""
  images = np.asarray(images)
  n, h, w, c = images.shape
  ncols = ncols or int(math.ceil(math.sqrt(n)))
  nrows = int(math.ceil(n / ncols))
  grid = np.zeros((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.uint8)
  for i, im in enumerate(images):
    r, q = divmod(i, ncols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h,
         pad + q * (w + pad):pad + q * (w + pad) + w] = im
  return grid


def save_png(path, images, ncols=None, upscale=1):
  """Writes `images` (uint8 [N, H, W, C]) as one PNG grid; returns the grid."""
  from PIL import Image
  grid = make_grid(images, ncols)
  if upscale > 1:
    grid = grid.repeat(upscale, 0).repeat(upscale, 1)
  Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid).save(path)
  return grid
