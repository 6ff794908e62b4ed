"""A noise-conditional score model of images as a gflow model (`gflow.model` protocol)."""

import math

import keras
import numpy as np
import tensorflow as tf

from gflow.flows.base import check_temperature, data_of
from gflow.io.outputs import ImageGrid
from gflow.model import LayerModel
from gflow.noise import Noise
from gflow.score.dsm import dsm_loss
from gflow.score.langevin import AnnealedLangevin

__all__ = ["ScoreModel", "CONDITIONINGS"]

CONDITIONINGS = ("divide", "conditional")


class _Owner(keras.layers.Layer):
  """Owns the network and the noise schedule σ₁ … σ_L (a checkpointed, non-trainable
  variable: sampling and evaluation read the trained run's schedule, not the config's)."""

  def __init__(self, network, sigmas, **kwargs):
    super().__init__(**kwargs)
    self.network = network
    self.sigmas = self.add_weight(name="sigmas", shape=(len(sigmas),), trainable=False,
                                  initializer=keras.initializers.Constant(
                                      np.asarray(sigmas, np.float32)))

  def call(self, x):
    raise TypeError("Use the ScoreModel's methods.")


class ScoreModel(LayerModel):
  """s(x, i) ≈ ∇ₓ log p_σᵢ(x), trained by denoising score matching, sampled by annealed
  Langevin dynamics (Song & Ermon 2019, 2020).

  Images arrive as protocol batches in level units (the data sources' dequantized
  v ∈ [0, K)); the model sees x = ⌊v⌋/(K − 1) ∈ [0, 1] (NCSNv2's ToTensor), or v/K
  with `dequantize` (uniform dequantization). Noise conditioning
  (`conditioning`): "divide" is technique 3, s(x, i) = net(x)/σᵢ with an
  unconditional network; "conditional" passes the level to the network (NCSN's
  conditional normalisation). `sampling` holds ε, T (`steps`), `denoise` and
  `jit_compile` of the sampler.

  * `loss`: ½‖σ·s(x̃, i) + z‖² per example, level uniform (`gflow.score.dsm`).
  * `evaluate`: "dsm" (uniform levels; `num_samples` noise draws averaged) and the
    loss at `eval_levels` evenly spaced levels, each example at each.
  * `generate(n, seed)`: annealed Langevin from U[0, 1] noise with the final
    denoising step, as uint8 images; `progress` (a callable (done, total)) sees
    each compiled chunk of levels; `network_evaluations` counts a run's score calls.
  """

  autograph = False  # no Python control flow on tensors (gflow.model)

  loss_name = "dsm"
  figure_units = {}

  def __init__(self, network, event_shape, sigmas, sampling, num_levels=256,
               conditioning="divide", dequantize=False, eval_levels=10, name="ScoreModel"):
    if conditioning not in CONDITIONINGS:
      from gflow.choices import check_choice
      check_choice(conditioning, CONDITIONINGS, "noise conditioning (model.conditioning)")
    self.event_shape = tuple(event_shape)
    if len(self.event_shape) != 3:
      raise ValueError(f"{name} models images (H, W, C); got event shape {event_shape}.")
    self.name = name
    self.conditioning = conditioning
    self.dequantize = bool(dequantize)
    self.num_levels = int(num_levels)
    self.sampling = dict(sampling)
    self.eval_levels = int(eval_levels)
    network.build((None, *self.event_shape))
    super().__init__(_Owner(network, sigmas, name=f"{name}_owner"), ImageGrid())
    self._figure_names = {i: f"dsm σ{i + 1}={float(v):.3g}"
                          for i, v in enumerate(np.asarray(sigmas))}
    self.progress = None
    s = self.sampling
    self._sampler = AnnealedLangevin(self.score, self._layer.sigmas, s["eps"], s["steps"],
                                     denoise=s.get("denoise", True),
                                     jit_compile=s.get("jit_compile", True))

  @property
  def network(self):
    return self._layer.network

  @property
  def sigmas(self):
    """The trained schedule σ₁ > … > σ_L (float32 [L])."""
    return tf.convert_to_tensor(self._layer.sigmas)

  @property
  def trainable_variables(self):
    return tuple(self._layer.trainable_variables)

  # -- the score ---------------------------------------------------------------------------
  def score(self, x, levels):
    """s(x, i) for x in [0, 1] and int32 levels [N]."""
    if self.conditioning == "conditional":
      return tf.cast(self.network(x, levels), tf.float32)
    out = tf.cast(self.network(x), tf.float32)
    sigma = tf.gather(self.sigmas, levels)
    return out / tf.reshape(sigma, [-1] + [1] * (len(out.shape) - 1))

  def to_unit(self, batch):
    """Protocol batch (level units) → the model's x ∈ [0, 1]."""
    v = tf.cast(data_of(batch), tf.float32)
    if v.shape.rank is not None and tuple(v.shape[1:]) != self.event_shape:
      raise ValueError(f"{self.name} expects images [N, {', '.join(map(str, self.event_shape))}]; "
                       f"got {v.shape}.")
    if self.dequantize:
      return v / self.num_levels
    return tf.floor(v) / (self.num_levels - 1)

  # -- the protocol ------------------------------------------------------------------------
  def loss(self, batch, seed, training=False):
    return dsm_loss(self.score, self.to_unit(batch), self.sigmas, Noise.coerce(seed))[0]

  def evaluation_levels(self):
    """The level indices `evaluate` reports one by one: evenly spaced, first and last."""
    count = int(self.sigmas.shape[0])
    k = max(1, min(self.eval_levels, count))
    return sorted({int(round(j)) for j in np.linspace(0, count - 1, k)})

  def figure_name(self, level):
    """"dsm σ<i>=<value>": the name of level i's figure (0-based i)."""
    return self._figure_names[level]

  def evaluate(self, batch, seed, num_samples=1, chunk_size=None):
    """"dsm" (uniform levels, the mean of `num_samples` draws of levels and noise) and the
    loss at each of `evaluation_levels`. One loop over these groups evaluates the
    network on the batch once per group (one copy of the network in the graph)."""
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
      raise ValueError(f"num_samples must be a positive int; got {num_samples!r}.")
    x, noise = self.to_unit(batch), Noise.coerce(seed)
    n = tf.shape(x)[0]
    fixed = self.evaluation_levels()
    count = int(self.sigmas.shape[0])
    fixed_levels = tf.constant([-1] * num_samples + fixed, tf.int32)

    def group(g):
      draw = noise.fold(g)
      uniform = tf.minimum(tf.cast(draw.uniform([n], stream=0) * count, tf.int32), count - 1)
      levels = tf.where(fixed_levels[g] < 0, uniform, tf.fill([n], fixed_levels[g]))
      return dsm_loss(self.score, x, self.sigmas, draw, levels)[0]
    losses = tf.map_fn(group, tf.range(num_samples + len(fixed)),
                       fn_output_signature=tf.TensorSpec([None], tf.float32))
    figures = {"dsm": tf.reduce_mean(losses[:num_samples], axis=0)}
    for j, level in enumerate(fixed):
      figures[self.figure_name(level)] = losses[num_samples + j]
    return figures

  def sampler(self):
    """The annealed Langevin sampler; it reads the schedule variable at each run."""
    return self._sampler

  @property
  def network_evaluations(self):
    return self.sampler().network_evaluations

  def sample_unit(self, n, seed):
    """n samples in [0, 1] (unclipped), from annealed Langevin dynamics."""
    if isinstance(seed, (int, np.integer)):
      seed = [int(seed), 0]
    if isinstance(seed, Noise):
      seed = seed.seed
    return self.sampler().sample([n, *self.event_shape], seed, progress=self.progress)

  def generate(self, n, seed, temperature=1.0, conditioning=None):
    if isinstance(n, (int, np.integer)) and n < 1:
      raise ValueError(f"{self.name}.generate: n must be >= 1; got {n}.")
    check_temperature(temperature, f"{self.name}.generate")
    if not math.isclose(float(temperature), 1.0):
      raise ValueError(f"{self.name} samples by Langevin dynamics: there is no temperature "
                       f"to set (got {temperature}); use 1.")
    if conditioning is not None:
      raise ValueError(f"{self.name} is unconditional; got a conditioning input.")
    x = self.sample_unit(n, seed)
    return tf.cast(tf.round(tf.clip_by_value(x, 0., 1.) * (self.num_levels - 1)), tf.uint8)
