"""gflow: plugin-based normalizing flows and score models on TensorFlow 2, Keras 3 and TFP."""

from gflow import _console

_console.quiet_start()  # console scripts only: before TensorFlow loads

from gflow import bijectors, data, io, layers, model, nets, registry
from gflow.flows import AugmentedFlow, Flow
from gflow.model import Model
from gflow.noise import Noise
from gflow.plugin import BijectorExample, Plugin

__all__ = ["AugmentedFlow", "BijectorExample", "Flow", "Model", "Noise", "Plugin", "bijectors",
           "data", "io", "layers", "load", "model", "nets", "registry"]

__version__ = "0.1.0"


def load(workdir, use_ema=True):
  """The trained model of a `gflow-train` workdir, from its config and last checkpoint."""
  from gflow.train.restore import load_model
  return load_model(workdir, use_ema=use_ema)
