"""A trained model back from its workdir: `gflow.load(workdir)`."""

import os
import sys

import tensorflow as tf

from gflow.train.checkpoint import check_model_entries, model_variables, trackable
from gflow.train.checkpoint_files import intact_latest
from gflow.train.ema import EMA
from gflow.train.trainer import build_model, load_run, trainable_keyed

__all__ = ["load_model"]


def load_model(workdir, use_ema=True, checkpoint=None):
  """The model of a `gflow-train` run with the weights of its last checkpoint
  (or of `checkpoint`); with `use_ema` and an EMA in the run, the averaged weights."""
  config, run = load_run(workdir)
  model = build_model(config, tuple(run["event_shape"]))
  entries = model_variables(model.layer)
  items = dict(model=trackable(entries))
  ema = None
  if config.train.get("ema_decay"):
    ema = EMA(trainable_keyed(model), config.train.ema_decay)
    items["ema"] = ema
  path = checkpoint or intact_latest(os.path.join(workdir, "checkpoints"), repair=False,
                                     log=lambda m: print(m, file=sys.stderr))
  if path is None:
    raise FileNotFoundError(f"{workdir!r} has no checkpoint yet.")
  check_model_entries(path, entries)
  tf.train.Checkpoint(**items).restore(path).expect_partial().assert_existing_objects_matched()
  if ema is not None and use_ema:
    ema.copy_to_model()
  return model
