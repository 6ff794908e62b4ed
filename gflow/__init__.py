"""gflow: plugin-based normalizing flows on TensorFlow 2, Keras 3 and TFP."""

from gflow import bijectors, layers, nets, registry
from gflow.flows import AugmentedFlow, Flow
from gflow.plugin import BijectorExample, Plugin

__all__ = ["AugmentedFlow", "BijectorExample", "Flow", "Plugin", "bijectors", "layers", "load", "nets",
           "registry"]

__version__ = "0.1.0"


def load(workdir, use_ema=True):
  """The trained model of a `gflow-train` workdir, from its config and last checkpoint."""
  from gflow.train.restore import load_model
  return load_model(workdir, use_ema=use_ema)
