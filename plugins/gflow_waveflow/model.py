"""WaveFlow (Ping, Peng, Zhao & Song, ICML 2020): a compact flow for raw audio given a mel.

A waveform x [T] is folded column-major into an h × T/h matrix (sample t at row
t mod h, column t // h) with the upsampled mel folded the same way; each of K
flows is an affine map autoregressive along the height (row i from rows < i and
the mel, all columns in parallel), with a 2-D dilated WaveNet; the rows are
permuted between flows. log p(x | mel) = log N(z; 0, σ²I) + Σ log s.
With `model.sharing` the K WaveNets share parameters as in NanoFlow
(`gflow.nets.sharing`; the official audio code's embedding is bias + gate).
"""

import math

import keras
import numpy as np
import tensorflow as tf

from gflow import layers as gl
from gflow import nets
from gflow.bijectors.fold import fold, unfold
from gflow.bijectors.permute_rows import waveflow_permutations
from gflow.io import WavFiles
from gflow.flows.parts import FlowParts
from gflow.model import LayerModel
from gflow.nets.sharing import SharingGroups, build_shared_networks

__all__ = ["WaveFlow", "build_model", "build_waveflow_stack"]


def build_waveflow_stack(num_flows, height, channels, n_mels, layers=8, weight_norm=True,
                         network_dtype=None, network_fn=None):
  """K flows (row-autoregressive affine maps) with WaveFlow's row permutations after
  each; `network_fn(k)` makes flow k's network (default: a fresh `WaveNet2D`)."""
  if height not in nets.HEIGHT_DILATIONS:
    raise ValueError(f"WaveFlow's height must be one of {sorted(nets.HEIGHT_DILATIONS)}; got "
                     f"{height}.")
  if num_flows < 1:
    raise ValueError(f"WaveFlow needs at least one flow; got {num_flows}.")
  if network_fn is None:
    table = nets.HEIGHT_DILATIONS[height]
    dilations = tuple(table[j % len(table)] for j in range(layers))

    def network_fn(k):
      return nets.WaveNet2D(channels, n_mels, layers=layers, height_dilations=dilations,
                            weight_norm=weight_norm, dtype=network_dtype, name=f"wavenet_{k}")
  order = np.arange(height)  # the stack's input rows held by the current flow's input
  steps = []
  for k, perm in enumerate(waveflow_permutations(height, num_flows)):
    steps.append(gl.RowAutoregressiveLayer(network_fn(k), conditioning_rows=order.copy(),
                                           name=f"flow_{k}"))
    steps.append(gl.PermuteRowsLayer(perm, name=f"permute_{k}"))
    order = order[perm]
  return gl.SequentialFlow(steps, name="flows")


class _Owner(keras.layers.Layer):
  """Owns every variable: the mel upsampler and the flows."""

  def __init__(self, upsampler, flow, **kwargs):
    super().__init__(**kwargs)
    self.upsampler = upsampler
    self.flow = flow

  def call(self, x):
    raise TypeError("Use the WaveFlow model's methods.")


class WaveFlow(LayerModel):
  """The WaveFlow model under gflow's model protocol (`gflow.model`).

  Batches: {"x": waveforms [N, T] in [-1, 1], "conditioning": log-mel [N, frames,
  n_mels]} (frames · hop ≥ T); evaluation batches also carry "length" and must
  hold one clip each (`eval.batch_size = 1`) or clips of one length. T is cut to
  a multiple of the height. The figure is the log-likelihood in nats per audio
  sample; samples are written as WAV files.
  """

  autograph = False  # no Python control flow on tensors (gflow.model)

  loss_name = "nats/sample"
  figure_units = {"log-likelihood": "nats/sample"}
  higher_is_better = frozenset({"log-likelihood"})

  def __init__(self, upsampler, flow, height, n_mels, sample_rate, sigma=1.0, name="WaveFlow"):
    self.height, self.n_mels, self.sigma = height, n_mels, sigma
    self.name = name
    self._owner = _Owner(upsampler, flow, name=name.lower())
    upsampler.build((None, None, n_mels))
    flow.build((None, height, None, 1))
    build_shared_networks(flow)
    super().__init__(self._owner, WavFiles(sample_rate))
    self._synthesize_fn = None

  @property
  def hop(self):
    return self._owner.upsampler.factor

  def _folded(self, x, mel):
    """(x [N, h, T'/h, 1], conditioning [N, h, T'/h, n_mels]) with T' = T cut to a multiple
    of the height."""
    x = tf.convert_to_tensor(x, tf.float32)
    if x.shape.rank != 2:
      raise ValueError(f"{self.name} expects waveforms [N, T]; got shape {x.shape}.")
    if mel is None:
      raise ValueError(f"{self.name} needs a mel spectrogram [N, frames, {self.n_mels}] as "
                       "conditioning.")
    if mel.shape[-1] is not None and mel.shape[-1] != self.n_mels:
      raise ValueError(f"{self.name} expects {self.n_mels} mel bands; got shape {mel.shape}.")
    length = tf.shape(x)[1] // self.height * self.height
    cond = self._owner.upsampler(mel)
    tf.debugging.assert_greater_equal(
        tf.shape(cond)[1], length,
        message=f"{self.name}: the mel has fewer frames than the waveform needs (hop {self.hop})")
    return fold(x[:, :length, None], self.height), fold(cond[:, :length], self.height)

  def log_prob(self, x, mel, training=False):
    """log p(x | mel) per waveform (summed over its samples), and the sample count."""
    xf, cf = self._folded(x, mel)
    z, log_det = self._owner.flow.forward_and_log_det(xf, 3, training=training, conditioning=cf)
    n = tf.cast(tf.size(z[0]), tf.float32)
    log_base = (-0.5 * tf.reduce_sum(tf.square(z), axis=[1, 2, 3]) / self.sigma ** 2
                - n * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi)))
    return log_base + log_det, n

  def loss(self, batch, seed, training=False):
    log_p, n = self.log_prob(batch["x"], batch["conditioning"], training)
    return -log_p / n

  def flow_parts(self, split, boundaries):
    """The K flows cut into gradient-isolated parts (`gflow.flows.parts`; WaveFlow has
    one level: boundaries are 1:k, after flow k). The mel upsampler belongs to part 1."""
    return FlowParts(self._owner.flow, split, boundaries,
                     first_part_layers=[self._owner.upsampler])

  def part_losses(self, batch, seed, parts, training=False, upto=None):
    """Each part's local objective in nats per audio sample, its output scored by the
    base N(0, σ²)."""
    xf, cf = self._folded(batch["x"], batch["conditioning"])
    n = tf.cast(tf.size(xf[0]), tf.float32)

    def log_normal(t):
      size = tf.cast(tf.reduce_prod(tf.shape(t)[1:]), tf.float32)
      return (-0.5 * tf.reduce_sum(tf.square(t), axis=[1, 2, 3]) / self.sigma ** 2
              - size * (math.log(self.sigma) + 0.5 * math.log(2 * math.pi)))
    losses = parts.losses(xf, log_normal, 3, training=training, conditioning=cf, upto=upto)
    return [loss / n for loss in losses]

  def evaluate(self, batch, seed, num_samples=1, chunk_size=None):
    if num_samples != 1:
      raise ValueError(f"{self.name}'s likelihood is exact: nothing to sample "
                       "(use num_importance_samples=1).")
    x = batch["x"]
    if "length" in batch:
      tf.debugging.assert_equal(
          batch["length"], tf.shape(x)[1], message=(
              f"{self.name} evaluates whole clips one length at a time: set "
              "--config.eval.batch_size=1"))
    log_p, n = self.log_prob(x, batch["conditioning"])
    return {"log-likelihood": log_p / n}

  def generate(self, n, seed, temperature=1.0, conditioning=None):
    """n waveforms [n, frames · hop cut to a multiple of h] given mels [n, frames, n_mels]."""
    if conditioning is None:
      raise ValueError(f"{self.name} synthesises from a mel spectrogram: pass conditioning "
                       f"[n, frames, {self.n_mels}].")
    frames = tf.shape(conditioning)[1]
    length = frames * self.hop // self.height * self.height
    _, cf = self._folded(tf.zeros([n, length]), conditioning)
    seed = tf.cast(tf.convert_to_tensor(seed), tf.int32)
    z = tf.random.stateless_normal(tf.shape(cf)[:3], seed=seed)[..., None]
    z = z * (self.sigma * temperature)
    return tf.clip_by_value(unfold(self.synthesize(z, cf))[..., 0], -1.0, 1.0)

  def synthesize(self, z, conditioning):
    """The folded waveform [N, h, W, 1] of latent z given the folded conditioning: the
    flows inverted last to first, K · h row steps with each layer's row cache."""
    if self._synthesize_fn is None:
      # XLA: the same speed as the graph executor on CPU, and for 10 s of audio a
      # third of its peak memory (2.2 vs 6.0 GiB, benchmarks/waveflow_synthesis.py).
      self._synthesize_fn = tf.function(self._synthesize, jit_compile=True)
    return self._synthesize_fn(z, conditioning)

  def _synthesize(self, z, conditioning):
    for layer in reversed(self._owner.flow.flow_layers):
      if isinstance(layer, gl.RowAutoregressiveLayer):
        z = layer.synthesize(z, conditioning)
      else:
        z = layer.bijector().inverse(z)
    return z


def build_model(model_config, event_shape):
  """WaveFlow-`channels` with K = `num_flows` flows of height `height` for waveform
  segments of `event_shape` = (T,)."""
  c = model_config
  if len(event_shape) != 1:
    raise ValueError(f"WaveFlow models waveforms (T,); got event shape {event_shape}.")
  if event_shape[0] % c.height:
    raise ValueError(f"the training segment ({event_shape[0]} samples) must be a multiple of "
                     f"the height {c.height}.")
  dtype = c.get("network_dtype") or None
  table = nets.HEIGHT_DILATIONS.get(c.height, (1,))
  dilations = tuple(table[j % len(table)] for j in range(c.layers))

  def wavenet(out_channels, head=True):
    if head and out_channels != 2:
      raise ValueError(f"WaveNet2D outputs (log s, t); asked for {out_channels} channels.")
    return nets.WaveNet2D(c.channels, c.n_mels, layers=c.layers, height_dilations=dilations,
                          weight_norm=c.weight_norm, head=head, dtype=dtype)

  sharing = SharingGroups.from_config(wavenet, c)
  network_fn = None
  if sharing.variant != "none":
    def network_fn(k):
      return sharing(0)(2, name=f"wavenet_{k}")
  flow = build_waveflow_stack(c.num_flows, c.height, c.channels, c.n_mels, c.layers,
                              c.weight_norm, dtype, network_fn=network_fn)
  upsampler = nets.MelUpsampler(tuple(c.upsample_strides), name="upsampler")
  return WaveFlow(upsampler, flow, c.height, c.n_mels, c.sample_rate, c.sigma)
