"""The model protocol: the only thing the trainer and the binaries know of a model.

`gflow-train`, `gflow-eval`, `gflow-sample`, `gflow-info` and `gflow.load` use
a model through these members and nothing else, so an image flow, an audio flow
and a score model train, evaluate, sample and resume through the same code.
A plugin's `build_model(model_config, event_shape)` returns such an object.

Batches are dicts of tensors with a leading batch axis, as the data source of
`config.data` yields them: `"x"` the data (dequantized images in level units,
waveforms, …) and, for conditional models, `"conditioning"` (a mel
spectrogram, a class, …). `seed` is a `gflow.Noise`: stateless draws keyed by
the run's seed and step that give each replica its rows of the global batch's
noise, so every loss is a deterministic function of (seed, step) under any
number of replicas.

Contract (checked by `check_model`):

* `layer`: the Keras layer that owns every variable, built so that
  `layer.variables` is complete (checkpoints, EMA and strategies use it).
* `trainable_variables`: the variables the optimizer updates.
* `loss(batch, seed, training=False)` → float32 [N]: the per-example training
  loss (the trainer sums it and divides by the global batch). `loss_name` says
  what it is, for progress lines ("bits/dim", "nats/sample", "dsm").
* `initialize(batch, seed)` → None: data-dependent initialisation (ActNorm) on
  one global batch, run in `strategy.run` so statistics are global;
  `is_initialized()` → bool, read from checkpointed state. Models without
  such a step return True at once.
* `evaluate(batch, seed, num_samples=1, chunk_size=None)` → dict of float32
  [N]: named per-example evaluation figures, averaged over the test set by the
  caller (image flows: `"bits/dim"`; audio flows: `"log-likelihood"`; score
  models: `"dsm"` and one entry per noise level). `num_samples` > 1 asks for a
  Monte Carlo estimate (importance samples of a bound, noise draws of a
  denoising loss), evaluated `chunk_size` at a time; a model with nothing to
  sample raises ValueError. `figure_units` maps a figure to its unit for
  printing (e.g. {"log-likelihood": "nats/sample"}). The first figure selects
  the run's best checkpoint: lower is better unless it is named in the optional
  `higher_is_better` (a set of figure names; default empty).
* `generate(n, seed, temperature=1.0, conditioning=None)` → n samples in data
  form (uint8 images, float waveforms in [-1, 1]); `conditioning` has a
  leading axis of n when given.
* `outputs`: a `gflow.io.OutputWriter` that writes such samples to files (PNG
  grid, WAV files) and to TensorBoard.
* Optional `autograph` (default True): whether the trainer traces `loss` and
  `initialize` with autograph. A model whose code has no Python control flow on
  tensors (`tf.cond` and `tf.while_loop` written out, as in all of gflow's
  models) sets False: autograph converts every function a trace calls, which
  was a quarter of DenseFlow's tracing time.
"""

import typing

__all__ = ["LayerModel", "Model", "check_model", "REQUIRED"]


@typing.runtime_checkable
class Model(typing.Protocol):
  """See the module docstring for the contract of each member."""

  loss_name: str
  figure_units: typing.Mapping[str, str]

  @property
  def layer(self): ...

  @property
  def trainable_variables(self): ...

  @property
  def outputs(self): ...

  def loss(self, batch, seed, training=False): ...

  def initialize(self, batch, seed): ...

  def is_initialized(self): ...

  def evaluate(self, batch, seed, num_samples=1, chunk_size=None): ...

  def generate(self, n, seed, temperature=1.0, conditioning=None): ...


class LayerModel:
  """A base for protocol models whose variables all live in one Keras layer: it provides
  `layer`, `trainable_variables` and `outputs`, and no data-dependent initialisation
  (override `initialize`/`is_initialized` to add one). Subclasses set `loss_name` and
  `figure_units` and implement `loss`, `evaluate` and `generate`."""

  loss_name = "loss"
  figure_units = {}
  higher_is_better = frozenset()
  autograph = True  # see the module docstring

  def __init__(self, layer, outputs):
    self._layer = layer
    self._outputs = outputs

  @property
  def layer(self):
    return self._layer

  @property
  def trainable_variables(self):
    return self._layer.trainable_variables

  @property
  def outputs(self):
    return self._outputs

  def initialize(self, batch, seed):
    """Nothing to initialise from data."""

  def is_initialized(self):
    return True


REQUIRED = ("layer", "trainable_variables", "outputs", "loss_name", "figure_units", "loss",
            "initialize", "is_initialized", "evaluate", "generate")


def check_model(model, plugin_name):
  """Returns `model` if it has every member of the protocol; TypeError naming the
  missing ones otherwise (a plugin's builder returned something else)."""
  missing = [m for m in REQUIRED if not hasattr(model, m)]
  if missing:
    raise TypeError(f"The model that plugin {plugin_name!r} built ({type(model).__name__}) "
                    f"lacks {', '.join(missing)} of the gflow model protocol "
                    f"(see gflow.model).")
  return model
