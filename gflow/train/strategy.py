"""`--strategy=default|mirrored|multi_worker` → a `tf.distribute.Strategy`."""

import os

import tensorflow as tf

from gflow.choices import check_choice

__all__ = ["STRATEGIES", "make_strategy"]

STRATEGIES = ("default", "mirrored", "multi_worker")


def make_strategy(name):
  """default: one device; mirrored: all local GPUs (all logical CPUs if none);
  multi_worker: MultiWorkerMirroredStrategy over the workers in TF_CONFIG."""
  if name == "default":
    return tf.distribute.get_strategy()
  if name == "mirrored":
    gpus = tf.config.list_logical_devices("GPU")
    devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
    return tf.distribute.MirroredStrategy(devices)
  if name == "multi_worker":
    if not os.environ.get("TF_CONFIG"):
      raise ValueError("--strategy=multi_worker needs TF_CONFIG (cluster and task) in the "
                       "environment of every worker.")
    return tf.distribute.MultiWorkerMirroredStrategy()
  check_choice(name, STRATEGIES, "strategy (--strategy)")
