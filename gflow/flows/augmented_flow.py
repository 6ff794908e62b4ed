"""A flow with noise augmentation and (variational) dequantization, as a TFP distribution."""

import math

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from gflow.bijectors.dequantization import UniformDequantization
from gflow.flows.base import LayerDistribution, data_of
from gflow.flows.flow import standard_normal_log_prob
from gflow.flows.parts import FlowParts
from gflow.noise import Noise
from gflow.layers.base import is_initialized
from gflow.nets.sharing import build_shared_networks


__all__ = ["AugmentedFlow"]

_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
# Noise streams of one likelihood evaluation: dequantization, flow, latent.
_DEQUANT, _FLOW, _LATENT = 0, 1, 2
_INIT_SEED = [0x1417, 0]


class _Owner(keras.layers.Layer):
  """Owns every variable of the model: the flow stack and the dequantizer."""

  def __init__(self, flow, dequantizer, **kwargs):
    super().__init__(**kwargs)
    self.flow = flow
    self.dequantizer = dequantizer

  def call(self, x):
    raise TypeError("Use the AugmentedFlow distribution's methods.")


class AugmentedFlow(LayerDistribution):
  """log p(v) ≥ E_e[log N(z; 0, I) + log w(v, e)] for a flow that adds noise dimensions.

  `flow` is a `gflow.layers.StochasticFlowLayer` (data → latent) whose forward
  pass draws the augmenting noise e and returns z with its log-weight
  log w = Σ log|det J| + Σ (log σ − log N(e)) (DenseFlow, Grcić et al. 2021,
  eq. 9). The latent keeps every coordinate (it is flat when the flow is
  multi-scale), so forward then `flow.generate` is the identity. Values are images in level units v ∈ [0, K) (like
  `gflow.Flow`); the flow sees v/K − ½.

  * `log_prob(v, seed=, num_samples=1)`: the single-sample bound on log p(v)
    (the default, what training maximises) or, with K samples, the
    importance-weighted estimate logsumexp_k log w_k − log K, which is itself a
    bound in expectation, tighter with K and exact as K → ∞.
  * `bits_per_dim(x, seed=, num_samples=K)` on integer images: the joint
    importance-weighted estimate over all noise: dequantization u ~ q(u|x)
    (uniform or the variational `dequantizer`, Flow++) and every augmentation.
  * `sample(n, seed=, temperature=)`: one generative pass; no noise network.

  Every estimate is a deterministic function of `seed` (an int, a [2] seed or
  a `gflow.Noise`). `training=True` runs BatchNorm in training mode.
  """

  def __init__(self, flow, event_shape, dequantizer=None, num_levels=256,
               validate_args=False, name=None):
    parameters = dict(locals())
    with tf.name_scope(name or "AugmentedFlow") as name:
      event_shape = tf.TensorShape(event_shape)
      if not event_shape.is_fully_defined() or event_shape.rank != 3:
        raise ValueError(f"AugmentedFlow needs a known image event shape (H, W, C); got "
                         f"{event_shape}.")
      if num_levels is None:
        raise ValueError("AugmentedFlow models discrete images: num_levels must be set.")
      self._uniform = UniformDequantization(num_levels)
      batch_shape = (None, *event_shape)
      if not flow.built:
        flow.build(batch_shape)
      if dequantizer is not None and not dequantizer.built:
        dequantizer.build(batch_shape)
      build_shared_networks(flow)
      self._latent_shape = tuple(flow.compute_output_shape(batch_shape)[1:])
      self._chunk_fn = None
      owner = _Owner(flow, dequantizer, name=f"{name.rstrip('/')}_owner")
      super().__init__(owner, event_shape, parameters, validate_args, name)

  # -- structure -----------------------------------------------------------------
  @property
  def flow(self):
    """The stochastic flow layer (data → latent); `layer` owns it and the dequantizer."""
    return self._layer.flow

  @property
  def dequantizer(self):
    """The variational dequantizer, or None for uniform dequantization."""
    return self._layer.dequantizer

  @property
  def num_levels(self):
    return self._uniform.num_levels

  @property
  def latent_shape(self):
    """Shape of the final latent z (larger than the data's when the flow augments)."""
    return self._latent_shape

  # -- one joint sample of all noise ---------------------------------------------------
  def _check(self, x, what):
    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and (
        x.shape.rank != 4 or not x.shape[1:].is_compatible_with(self._event_shape_static)):
      raise ValueError(f"{self.name}.{what} expects a batch of shape [N, "
                       f"{', '.join(map(str, self._event_shape_static))}]; got {x.shape}.")
    if not (x.dtype.is_floating or x.dtype.is_integer):
      raise TypeError(f"{self.name}.{what} expects images; got {x.dtype.name}.")
    return x

  def _continuous_log_weight(self, v, noise, training):
    """log N(z) + log w for dequantized v in level units, one draw of the flow's noise."""
    y = self._uniform.forward(v)
    z, log_w = self.flow.forward_and_bound(y, noise.fold(_FLOW), training=training)
    log_w = log_w + self._uniform.forward_log_det_jacobian(v, event_ndims=3)
    log_base = -tf.reduce_sum(0.5 * tf.square(z) + _HALF_LOG_2PI,
                              axis=list(range(1, z.shape.rank)))
    return log_base + log_w

  def _dequantization_draw(self, x, noise, training):
    """(u, log q(u | x)) for integer levels x: uniform (log q = 0) or variational."""
    x = tf.cast(x, tf.float32)
    if self.dequantizer is None:
      return noise.uniform([tf.shape(x)[0], *x.shape[1:]], stream=_DEQUANT), 0.
    return self.dequantizer.sample(x, noise.fold(_DEQUANT), training=training)

  def _discrete_log_weight(self, x, noise, training):
    """log p(x + u, e) − log q(u | x) − log p*(e) for integer levels x, one joint draw."""
    x = tf.cast(x, tf.float32)
    u, log_q = self._dequantization_draw(x, noise, training)
    return self._continuous_log_weight(x + u, noise, training) - log_q

  def _importance_weighted(self, x, noise, num_samples, chunk_size, discrete, training):
    """logsumexp over K joint draws of log w − log K, K drawn `chunk_size` at a time.

    Each chunk is one compiled call over the batch tiled k times, so K = 1000
    fits in memory at any batch size that one chunk fits.
    """
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
      raise ValueError(f"num_samples must be a positive int; got {num_samples!r}.")
    if num_samples == 1:
      return self._log_weight(x, noise, discrete, training)
    chunk = max(1, min(chunk_size or num_samples, num_samples))
    if self._chunk_fn is None:
      self._chunk_fn = tf.function(self._chunk, reduce_retracing=True)
    total = None
    for j, start in enumerate(range(0, num_samples, chunk)):
      k = min(chunk, num_samples - start)
      sub = noise.fold(j)
      lw = self._chunk_fn(x, k, sub.seed, discrete, training)
      total = lw if total is None else tf.reduce_logsumexp(tf.stack([total, lw]), axis=0)
    return total - math.log(num_samples)

  def _log_weight(self, x, noise, discrete, training):
    if discrete:
      return self._discrete_log_weight(x, noise, training)
    return self._continuous_log_weight(x, noise, training)

  def _chunk(self, x, k, seed, discrete, training):
    """logsumexp over k draws per example of log w ([N]); x is tiled k times."""
    n = tf.shape(x)[0]
    tiled = tf.reshape(tf.tile(x[None], [k, 1, 1, 1, 1]), [-1, *x.shape[1:]])
    lw = self._log_weight(tiled, Noise(seed), discrete, training)
    return tf.reduce_logsumexp(tf.reshape(lw, [k, n]), axis=0)

  # -- the TFP interface and friends -------------------------------------------------
  def log_prob(self, value, name="log_prob", **kwargs):
    value = self._check(value, "log_prob")
    if not value.dtype.is_floating:
      raise TypeError(f"{self.name}.log_prob expects dequantized float values in level "
                      f"units; for integer images use bits_per_dim(x).")
    return super().log_prob(tf.cast(value, self.dtype), name=name, **kwargs)

  def _log_prob(self, v, seed=None, num_samples=1, chunk_size=None, training=False):
    return self._importance_weighted(v, Noise.coerce(seed), num_samples, chunk_size,
                                     discrete=False, training=training)

  def log_likelihood(self, x, seed=None, num_samples=1, chunk_size=None, training=False):
    """Estimate of log P(x) for integer images x (a bound in expectation, K joint samples).

    Float input in level units is read as x + u: with uniform dequantization
    and one sample its u is used as the dequantization draw; otherwise its
    integer part is taken and u drawn here.
    """
    x = self._check(x, "log_likelihood")
    noise = Noise.coerce(seed)
    if x.dtype.is_floating and self.dequantizer is None and num_samples == 1:
      return self._continuous_log_weight(tf.cast(x, tf.float32), noise, training)
    if x.dtype.is_floating:
      x = tf.floor(x)
    else:
      x = self.check_levels(x, "log_likelihood")
    return self._importance_weighted(tf.cast(x, tf.float32), noise, num_samples, chunk_size,
                                     discrete=True, training=training)

  def bits_per_dim(self, x, seed=None, num_samples=1, chunk_size=None, training=False):
    """−log₂ P̂(x) / D per example, from `log_likelihood`."""
    ll = self.log_likelihood(x, seed, num_samples, chunk_size, training)
    return -ll / (self.num_dims * math.log(2.))

  # -- training in parts (gflow.flows.parts) ---------------------------------------------
  def flow_parts(self, split, boundaries):
    """The flow's stages cut into gradient-isolated parts; the variational dequantizer
    belongs to part 1."""
    first = [self.dequantizer] if self.dequantizer is not None else []
    return FlowParts(self.flow, split, boundaries, first_part_layers=first)

  def part_losses(self, batch, seed, parts, training=False, upto=None):
    """Each part's local objective per example in bits/dim: the single-sample bound
    of `loss`, for the same noise, cut into parts (`gflow.flows.parts`). Part 1 counts
    the dequantization (−log q(u|x) and the scaling to the flow's range); a part's
    output and the halves it factors out are scored by N(0, I). With one part it
    equals `loss`."""
    x = self._check(data_of(batch), "part_losses")
    noise = Noise.coerce(seed)
    if x.dtype.is_floating and self.dequantizer is None:  # already dequantized
      v, log_q = tf.cast(x, tf.float32), 0.
    else:
      x = tf.floor(x) if x.dtype.is_floating else self.check_levels(x, "part_losses")
      u, log_q = self._dequantization_draw(x, noise, training)
      v = tf.cast(x, tf.float32) + u
    extra = self._uniform.forward_log_det_jacobian(v, event_ndims=3) - log_q
    losses = parts.losses(self._uniform.forward(v), standard_normal_log_prob, 3,
                          training=training, upto=upto, extra_ldj=extra,
                          noise=noise.fold(_FLOW))
    return [loss / (self.num_dims * math.log(2.)) for loss in losses]

  def _sample_n(self, n, seed=None, temperature=1.0):
    if isinstance(seed, (int, np.integer)):
      seed = [int(seed), 0]
    noise = seed if isinstance(seed, Noise) else Noise(tfp.random.sanitize_seed(seed))
    z = noise.normal([n, *self._latent_shape], stream=_LATENT) * temperature
    y = self.flow.generate(z, noise.fold(_FLOW), temperature)
    return self._uniform.inverse(y)

  def quantize(self, v):
    """Samples in level units → integer images."""
    return self._uniform.quantize(v)

  def dequantize(self, x, seed=None):
    """x + U[0, 1) noise (stateless, from `seed`), in level units."""
    seed = tfp.random.sanitize_seed(seed if seed is not None else 0)
    return self._uniform.dequantize(x, seed)

  def initialize(self, x, seed=None):
    """Data-dependent initialisation (ActNorm) from a batch in level units (or a
    protocol batch {"x": …}).

    Call it once before training, inside `strategy.run` under a strategy. The
    default noise seed differs from the evaluation default: statistics fitted
    to one noise draw would flatter an evaluation with that same draw.
    """
    x = self._check(data_of(x), "initialize")
    return self.flow.initialize(self._uniform.forward(tf.cast(x, tf.float32)),
                                Noise.coerce(seed, default=_INIT_SEED).fold(_FLOW))

  def is_initialized(self):
    return is_initialized(self.flow)
