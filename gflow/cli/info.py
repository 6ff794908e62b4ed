"""gflow-info: a model's architecture by block and its parameter count, without data.

    gflow-info --config=configs/glow.py:cifar10
    gflow-info --config=configs/denseflow.py:cifar10 --depth=4

Builds the model the config names (any plugin's, through `build_model`) on the
CPU, for the image shape of its dataset read from the config alone
(`gflow.data.event_shape`): no dataset is loaded or downloaded. Prints a header
(model, event shape), the tree of Keras layers under the model's owning layer
with each layer's parameter count (consecutive identical siblings once, "× n"),
then `parameters: <trainable>` and, if any, `non-trainable: <count>`.
Networks shared by several flows (`model.sharing`) are counted once, on lines of
their own after the tree; a flow's count is its own parameters only.
"""

import math
import os

from absl import flags
from ml_collections import config_flags

from gflow.cli import common

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config file, e.g. configs/glow.py:digits.",
                                          lock_config=True)
_DEPTH = flags.DEFINE_integer("depth", 3, "How many levels of the layer tree to print "
                              "(below the model's own layer).", lower_bound=0)
flags.mark_flags_as_required(["config"])


class _OneLineConfigParser(flags.ArgumentParser):
  """Wraps ml_collections' config-file parser so that a config file that is missing,
  or whose `get_config(arg)` raises, gives one line (its message), not a traceback.

  GFLOW_DEBUG=1 keeps ml_collections' own error with the full traceback.
  """

  def __init__(self, parser):
    self._parser = parser

  def flag_type(self):
    return self._parser.flag_type()

  def parse(self, path):
    if os.environ.get(common.DEBUG_ENV) or not isinstance(path, str):
      return self._parser.parse(path)
    file, _, arg = path.partition(":")
    if not os.path.isfile(file):
      raise ValueError(f"no config file {file!r} (from {os.getcwd()}); pass "
                       "--config=<file>.py:<arg>, e.g. configs/glow.py:digits.")
    try:
      config = self._parser.parse(path)
      getattr(config, "model", None)  # an OSError in the file is deferred to here
      return config
    except Exception as e:  # noqa: BLE001 - the user's config file can raise anything
      cause = e
      if str(e).startswith("Error whilst parsing config file") and e.__context__:
        cause = e.__context__  # ml_collections re-raises ValueError/TypeError as a traceback
      elif isinstance(e, OSError) and e.__cause__:
        cause = e.__cause__  # ml_collections defers the file's OSError to first use
      message = " ".join(str(cause).split()) or type(cause).__name__
      if not isinstance(cause, (ValueError, TypeError)):
        message = f"{type(cause).__name__}: {message}"
      raise ValueError(f"{file}: get_config({arg!r}) failed: {message}") from None


flags.FLAGS["config"].parser = _OneLineConfigParser(flags.FLAGS["config"].parser)


def _size(weights):
  return sum(math.prod(w.shape) for w in weights)


def _params(layer, trainable=True):
  """The parameters of `layer`, without those of networks it shares with other layers."""
  from gflow.nets.sharing import SharedNetwork, shared_networks
  weights = layer.trainable_weights if trainable else layer.non_trainable_weights
  if not isinstance(layer, SharedNetwork):
    shared = {id(w) for s in shared_networks(layer) for w in s.weights}
    weights = [w for w in weights if id(w) not in shared]
  return _size(weights)


def sharing_lines(root):
  """One line per network shared by several flows, then NanoFlow's count with the
  flow embeddings folded into per-flow biases when that differs."""
  from gflow.nets.sharing import folded_parameter_count, shared_networks
  groups = shared_networks(root)
  lines = [f"{g.name} (SharedNetwork, {g.variant}): {_params(g):,} parameters shared by "
           f"{g.num_members} flows" for g in groups]
  folded = folded_parameter_count(root)
  if groups and folded != _size(root.trainable_weights):
    lines.append(f"parameters with the flow embeddings folded into per-flow biases "
                 f"(NanoFlow's count for synthesis): {folded:,}")
  return lines


def _children(layer):
  """Direct Keras sub-layers (`flow_layers` of a SequentialFlow, `inner` of a
  FactorOutLayer, networks, …), with pure structure (a StochasticSequential or
  MultiScale, which own no weights of their own) replaced by what it holds, so
  that blocks nested for multi-scale print one after another."""
  from gflow.layers import MultiScale, StochasticSequential
  from gflow.nets.sharing import SharedNetwork
  out = []
  for child in layer._flatten_layers(include_self=False, recursive=False):
    if isinstance(child, SharedNetwork):
      continue  # printed once, after the tree
    if isinstance(child, (MultiScale, StochasticSequential)):
      out += _children(child)
    else:
      out.append(child)
  return out


def _signature(layer):
  """What makes two sibling layers 'the same' for collapsing runs of them: class,
  parameter counts and, recursively, the same for their sub-layers."""
  return (type(layer).__name__, _params(layer), _params(layer, trainable=False),
          tuple(_signature(c) for c in _children(layer)))


def architecture_lines(layer, depth, indent=0):
  """An indented tree of `layer`'s sub-layers, `depth` levels deep, one line per
  layer: name (class): trainable parameters. Consecutive identical siblings are
  printed once, with "× n"."""
  lines = []
  if depth < 1:
    return lines
  children = _children(layer)
  i = 0
  while i < len(children):
    child, run = children[i], 1
    while i + run < len(children) and _signature(children[i + run]) == _signature(child):
      run += 1
    times, each = (f" × {run}", " each") if run > 1 else ("", "")
    lines.append(f"{'  ' * indent}{child.name} ({type(child).__name__}){times}: "
                 f"{_params(child):,} parameters{each}")
    lines += architecture_lines(child, depth - 1, indent + 1)
    i += run
  return lines


def _build_on_cpu(config, shape):
  """The model, its variables created on the CPU (sizes only: no GPU memory)."""
  import tensorflow as tf

  from gflow.train.trainer import build_model
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):  # devices already initialised: tf.device below suffices
    pass
  with tf.device("/CPU:0"):
    return build_model(config, shape)


def _examples(data_config, shape):
  """What one example is: images HxWxC, audio segments (and their mel), or a shape."""
  from gflow import data as gdata
  if len(shape) == 3:
    return f"images {'x'.join(map(str, shape))}"
  if "segment_length" in data_config and len(shape) == 1:
    text = f"audio: {shape[0]:,}-sample segments"
    mel = gdata.mel_config(data_config)
    if mel is not None:
      text += (f", {mel.n_mels}-band log-mel conditioning ({mel.sample_rate:,} Hz, "
               f"n_fft {mel.n_fft}, hop {mel.hop})")
    return text
  return f"examples {'x'.join(map(str, shape))}"


def main(argv):
  common.reject_extra_args(argv)
  from gflow import data as gdata
  config = _CONFIG.value
  shape = gdata.event_shape(config.data)
  model = _build_on_cpu(config, shape)
  print(f"{config.model.name} ({type(model).__name__}) for {config.data.name} "
        f"{_examples(config.data, shape)}")
  latent = getattr(model, "latent_shape", None)
  if latent is not None:
    print(f"latent dimensions: {math.prod(latent):,} (data: {math.prod(shape):,})")
  root = model.layer
  print(f"{root.name} ({type(root).__name__}): {_size(root.trainable_weights):,} parameters")
  for line in architecture_lines(root, _DEPTH.value, indent=1) + sharing_lines(root):
    print(line)
  print(f"parameters: {_size(model.trainable_variables):,}")
  frozen = _params(root, trainable=False)
  if frozen:
    print(f"non-trainable: {frozen:,}")
  return 0


def run():
  common.run_app(main)


if __name__ == "__main__":
  run()
