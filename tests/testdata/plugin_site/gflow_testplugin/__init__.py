"""A third-party plugin as a user would write it: a bijector, two models and a data source.

Found by gflow only through the `gflow.plugins` entry point in this folder's
dist-info (put the folder on sys.path / PYTHONPATH). `testflow` is an image
flow built from gflow's layers; `cond1d` is a model of another kind, written
against the model protocol alone (`gflow.model`): a conditional flow over 1-D
signals whose figure is a log-likelihood in nats per sample, whose samples are
WAV files, trained by the same `gflow-train` on the `noisy_sines` source.
"""

import functools
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

import gflow
from gflow import layers as gl
from gflow import nets


class SoftSignedShift(tfp.bijectors.Bijector):
  """y = x + a·tanh(x) with 0 ≤ a < 1 (strictly increasing).

  Inverse by Newton's method.  log|det J| = Σ log(1 + a·(1 − tanh²x)).
  """

  def __init__(self, a=0.5, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "SoftSignedShift") as name:
      self._a = a
      super().__init__(forward_min_event_ndims=0, parameters=parameters, name=name)

  def _forward(self, x):
    return x + self._a * tf.tanh(x)

  def _inverse(self, y):
    x = y / (1 + self._a)
    for _ in range(30):
      x = x - (x + self._a * tf.tanh(x) - y) / (1 + self._a * (1 - tf.tanh(x) ** 2))
    return x

  def _forward_log_det_jacobian(self, x):
    return tf.math.log1p(self._a * (1 - tf.tanh(x) ** 2))


class SoftSignedShiftLayer(gl.FlowLayer):
  def build(self, input_shape):
    pass

  def bijector(self):
    return SoftSignedShift(0.5)


def _example(dtype):
  x = tf.random.stateless_normal([3, 2, 2, 2], seed=[1, 2], dtype=dtype) * 2
  return gflow.BijectorExample(SoftSignedShift(0.5), x, 3)


def build_model(model_config, event_shape):
  net = functools.partial(nets.GlowCNN, width=model_config.width)
  layer = gl.SequentialFlow([
      gl.SqueezeLayer(), gl.ActNormLayer(), gl.CouplingLayer(net, kind="additive"),
      gl.Conv1x1Layer(), gl.CouplingLayer(net), SoftSignedShiftLayer(),
      gl.SqueezeLayer(unsqueeze=True)])
  return gflow.Flow(layer, event_shape, num_levels=256, name="TestFlow")


# -- a model of another kind: a conditional flow over 1-D signals -------------------
SIGNAL_LENGTH, SAMPLE_RATE = 16, 8000


def noisy_sines(data_config):
  """x[t] = a·sin(2π·f·t/T + φ) + 0.05·n, conditioning [a, f/4]: a ∈ [0.2, 0.8],
  f ∈ {1 … 4}, φ and n random; 512 training and 128 test signals from fixed seeds."""
  def make(n, seed):
    rng = np.random.RandomState(seed)
    a = rng.uniform(0.2, 0.8, n)
    f = rng.randint(1, 5, n)
    phase = rng.uniform(0, 2 * np.pi, n)
    t = np.arange(SIGNAL_LENGTH)
    x = a[:, None] * np.sin(2 * np.pi * f[:, None] * t / SIGNAL_LENGTH + phase[:, None])
    x += 0.05 * rng.randn(n, SIGNAL_LENGTH)
    return {"x": x, "conditioning": np.stack([a, f / 4.0], axis=1)}
  return gflow.data.ArraySource("noisy_sines", make(512, 1), make(128, 2))


class ConditionalSignalFlow(gflow.model.LayerModel):
  """log p(x | c) = log N(f(x; c); 0, I) + log|det ∂f/∂x| for signals x [T] given c."""

  loss_name = "nats/sample"
  figure_units = {"log-likelihood": "nats/sample"}
  higher_is_better = frozenset({"log-likelihood"})

  def __init__(self, layer, length):
    self.length = length
    layer.build((None, length))
    super().__init__(layer, gflow.io.WavFiles(SAMPLE_RATE))

  def log_prob(self, x, conditioning, training=False):
    z, ldj = self._layer.forward_and_log_det(x, 1, training=training,
                                             conditioning=conditioning)
    return -0.5 * tf.reduce_sum(tf.square(z) + math.log(2 * math.pi), axis=-1) + ldj

  def loss(self, batch, seed, training=False):
    loss = -self.log_prob(batch["x"], batch["conditioning"], training) / self.length
    # Python control flow on a tensor, as a plugin author may write it: this model
    # leaves `autograph` at its default (True), so the trainer's trace converts it
    if tf.reduce_any(loss > 1e30):
      loss = tf.minimum(loss, 1e30)
    return loss

  def evaluate(self, batch, seed, num_samples=1, chunk_size=None):
    if num_samples != 1:
      raise ValueError("ConditionalSignalFlow's likelihood is exact: nothing to sample.")
    return {"log-likelihood": self.log_prob(batch["x"], batch["conditioning"]) / self.length}

  def generate(self, n, seed, temperature=1.0, conditioning=None):
    if conditioning is None:
      raise ValueError("ConditionalSignalFlow needs a conditioning input [n, 2].")
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    z = tf.random.stateless_normal([n, self.length], seed=seed) * temperature
    return self._layer.bijector(conditioning=conditioning).inverse(z)


def build_cond1d(model_config, event_shape):
  if tuple(event_shape) != (SIGNAL_LENGTH,):
    raise ValueError(f"cond1d models signals of length {SIGNAL_LENGTH}; got {event_shape}.")
  net = functools.partial(nets.MLP, width=model_config.width, depth=2, conditioning_dim=2)
  steps = []
  for _ in range(model_config.steps):
    steps += [gl.CouplingLayer(net, scale_fn="exp_tanh", event_ndims=1),
              gl.ChannelSwapLayer()]
  return ConditionalSignalFlow(gl.SequentialFlow(steps, name="cond1d"), SIGNAL_LENGTH)


PLUGIN = gflow.Plugin(
    name="testflow",
    build_model=build_model,
    bijectors={"soft_signed_shift": _example},
    description="test-only plugin (tests/testdata/plugin_site)",
)

COND1D = gflow.Plugin(
    name="cond1d",
    build_model=build_cond1d,
    data_sources={"noisy_sines": noisy_sines},
    description="test-only conditional flow over 1-D signals (tests/testdata/plugin_site)",
)
