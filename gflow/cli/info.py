"""gflow-info: a model's architecture by block and its parameter count, without data.

    gflow-info --config=configs/denseflow.py:cifar10
    gflow-info --config=configs/glow.py:cifar10 --depth=2

Builds the model the config names (any plugin) for the image shape of its
dataset, read from the config alone: nothing is loaded or downloaded.
"""

import math

from absl import flags
from ml_collections import config_flags

from gflow.cli import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/glow.py:digits.",
                                          lock_config=True)
_DEPTH = flags.DEFINE_integer("depth", 3, "How many levels of the layer tree to print.")
flags.mark_flags_as_required(["config"])


def _params(layer, trainable=True):
  weights = layer.trainable_weights if trainable else layer.non_trainable_weights
  return sum(int(w.numpy().size) for w in weights)


def _children(layer):
  """Direct sub-layers, with pure structure (a StochasticSequential or MultiScale,
  which own no weights of their own) replaced by what it holds, so that blocks
  nested for multi-scale print one after another."""
  from gflow.layers import MultiScale, StochasticSequential
  out = []
  for child in layer._flatten_layers(include_self=False, recursive=False):
    if isinstance(child, (MultiScale, StochasticSequential)):
      out += _children(child)
    else:
      out.append(child)
  return out


def _signature(layer):
  """What makes two sibling layers 'the same' for collapsing runs of them."""
  return (type(layer).__name__, _params(layer), tuple(_signature(c) for c in _children(layer)))


def architecture_lines(layer, depth, indent=0):
  """An indented tree of `layer`'s sub-layers with parameter counts; consecutive
  identical siblings are printed once with "× n"."""
  lines = []
  children = _children(layer)
  i = 0
  while i < len(children):
    child, run = children[i], 1
    while i + run < len(children) and _signature(children[i + run]) == _signature(child):
      run += 1
    times = f" × {run}" if run > 1 else ""
    lines.append(f"{'  ' * indent}{child.name} ({type(child).__name__}){times}: "
                 f"{_params(child):,} parameters{' each' if run > 1 else ''}")
    if depth > 1:
      lines += architecture_lines(child, depth - 1, indent + 1)
    i += run
  return lines


def main(argv):
  common.reject_extra_args(argv)
  from gflow import data as gdata
  from gflow.train.trainer import build_model
  config = _CONFIG.value
  shape = gdata.event_shape(config.data)
  model = build_model(config, shape)
  print(f"{config.model.name} ({type(model).__name__}) for {config.data.name} images "
        f"{'x'.join(map(str, shape))}")
  latent = getattr(model, "latent_shape", None)
  if latent is not None:
    print(f"latent dimensions: {math.prod(latent):,} (data: {math.prod(shape):,})")
  root = model.layer
  print(f"{root.name} ({type(root).__name__}): {_params(root):,} parameters")
  for line in architecture_lines(root, _DEPTH.value, indent=1):
    print(line)
  print(f"parameters: {_params(root):,}")
  frozen = _params(root, trainable=False)
  if frozen:
    print(f"non-trainable: {frozen:,}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
