"""DenseFlow as the benchmarks build it: the paper's CIFAR-10 config on random images.

    model, x = random_denseflow.build("74-10", batch=8)   # initialised on x
"""

import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"74-10": "cifar10", "45-6": "cifar10_45_6"}  # configs/denseflow.py's arguments


def random_images(batch, seed=0):
  """A batch of dequantized random 8-bit 32x32x3 images, float32 in [0, 256)."""
  import numpy as np
  import tensorflow as tf
  rng = np.random.default_rng(seed)
  shape = (batch, 32, 32, 3)
  return tf.constant(rng.integers(0, 256, shape) + rng.random(shape), tf.float32)


def build(name, batch, network_dtype=""):
  """DenseFlow-`name` ("74-10" or "45-6") for 32x32x3, its data-dependent init run on a
  batch of `batch` random images: (model, that batch)."""
  sys.path.insert(0, os.path.join(REPO, "configs"))
  try:
    import denseflow
  finally:
    sys.path.pop(0)
  from gflow.train.trainer import build_model
  config = denseflow.get_config(CONFIGS[name])
  config.model.network_dtype = network_dtype
  model = build_model(config, (32, 32, 3))
  x = random_images(batch)
  model.initialize(x)
  return model, x
