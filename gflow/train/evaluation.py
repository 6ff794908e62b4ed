"""Evaluation figures of any model over a test set, through the model protocol.

One path for the trainer and `gflow-eval`, so both print the same figures.
Batch i of the test set is evaluated with the noise `Noise([seed, i])`: the
figures are a deterministic function of the run's seed.
"""

import math

import numpy as np
import tensorflow as tf

from gflow.layers.shared_trace import shared_trace_scope
from gflow.noise import Noise

__all__ = ["Evaluator", "evaluate", "summarize", "format_figures", "format_baselines"]


def evaluate(model, dataset, seed, num_samples=1, chunk_size=None, shared_traces=False):
  """{figure name: per-item values (numpy)} of `model.evaluate` over `dataset`."""
  return Evaluator(model, num_samples, chunk_size, shared_traces)(dataset, seed)


class Evaluator:
  """`model.evaluate` over datasets, compiled once (keep one to evaluate repeatedly).

  With one sample the model's `evaluate` runs compiled (`tf.function`); a Monte
  Carlo estimate (`num_samples` > 1) calls it eagerly so the model can loop over
  chunks of samples it compiles itself, bounding memory at any K. `shared_traces`
  (`train.shared_traces`): the model's checkpoint layers share one trace per signature
  in what is traced here (`gflow.layers.shared_trace`; DenseFlow-74-10's evaluation
  traced 74 modules unrolled).
  """

  def __init__(self, model, num_samples=1, chunk_size=None, shared_traces=False):
    if not isinstance(num_samples, int) or num_samples < 1:
      raise ValueError(f"num_samples must be a positive int; got {num_samples!r}.")

    def one(batch, s):
      with shared_trace_scope(shared_traces):
        return model.evaluate(batch, Noise(s), num_samples=num_samples,
                              chunk_size=chunk_size)
    self._fn = tf.function(one, reduce_retracing=True) if num_samples == 1 else one

  def __call__(self, dataset, seed):
    out = {}
    for i, batch in enumerate(dataset):
      figures = self._fn(batch, tf.constant([seed, i], tf.int32))
      for name, values in figures.items():
        out.setdefault(name, []).append(np.asarray(values))
    if not out:
      raise ValueError("The test set is empty: nothing to evaluate.")
    return {name: np.concatenate(v) for name, v in out.items()}


def summarize(figures):
  """{name: (mean, standard error over the items)} of per-item figures."""
  out = {}
  for name, values in figures.items():
    values = np.asarray(values, np.float64)
    stderr = values.std(ddof=1) / math.sqrt(len(values)) if len(values) > 1 else float("nan")
    out[name] = (float(values.mean()), float(stderr))
  return out


def _figure(mean, stderr, unit):
  """`mean ± stderr unit` (no ± for one item: no standard error)."""
  text = f"{mean:.4f}" if math.isnan(stderr) else f"{mean:.4f} ± {stderr:.4f}"
  return text + (f" {unit}" if unit else "")


def format_figures(summary, units=None, prefix="test "):
  """Lines `test <name>: <mean> ± <standard error>[ <unit>]`, in the model's order."""
  units = units or {}
  return [f"{prefix}{name}: {_figure(mean, stderr, units.get(name))}"
          for name, (mean, stderr) in summary.items()]


def format_baselines(source, units=None, seed=0, limit=0):
  """Lines `<baseline> <figure>: <mean> ± <standard error>[ <unit>] (<fit>)` of the
  reference figures `source.baselines` gives (none for most sources)."""
  units = units or {}
  lines = []
  for b in source.baselines(seed, limit):
    mean, stderr = summarize({b.figure: b.values})[b.figure]
    lines.append(f"{b.label} {b.figure}: {_figure(mean, stderr, units.get(b.figure))} "
                 f"({b.description})")
  return lines
