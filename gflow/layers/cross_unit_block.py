"""A DenseFlow block: flow units densely connected through cross-unit coupling."""

import math

import tensorflow as tf

from gflow.bijectors.cross_unit_coupling import CrossUnitCoupling
from gflow.choices import check_choice
from gflow.layers.base import inverse_of, is_initialized
from gflow.layers.stochastic import StochasticFlowLayer
from gflow.nets.cross_unit_net import CrossUnitNet

__all__ = ["CrossUnitBlock", "CONTEXTS"]

CONTEXTS = ("all", "last")
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


class CrossUnitBlock(StochasticFlowLayer):
  """Units f₁ … f_M with incremental augmentation between them (Grcić et al. 2021, Fig. 1c).

  Data → latent: z₀ = x; after unit i < M the representation is augmented with
  `growth` noise channels, [z_i, μ_i + σ_i ⊙ e_i], e_i ~ N(0, I), where
  (μ_i, log σ_i) = g_i(z₀, …, z_{i−1}) (`context="all"`: the block's earlier
  representations, dense connectivity; `"last"`: z_{i−1} only). The bound gains
  Σ log σ_i − log N(e_i) per augmentation (eq. 9). Latent → data: each unit is
  inverted and the added channels dropped, without evaluating g.

  `units` are flow layers (bijective `FlowLayer`s) built here for C, C + k,
  C + 2k, … channels. `augment=False` keeps the width (a plain flow);
  `preconditioned=False` appends white noise (no g, the Table 4 ablation).
  `network_dtype` (e.g. "mixed_bfloat16") is the g networks' dtype policy; their
  outputs are cast to the representation's dtype before they enter the bound.
  """

  def __init__(self, units, growth, augment=True, preconditioned=True, context="all",
               network_dtype=None, **kwargs):
    super().__init__(**kwargs)
    if not units:
      raise ValueError("CrossUnitBlock needs at least one unit.")
    if augment and (not isinstance(growth, int) or growth < 1):
      raise ValueError(f"growth must be a positive int when augmenting; got {growth!r}.")
    if context not in CONTEXTS:
      check_choice(context, CONTEXTS, "context")
    self.units = list(units)
    self.growth = growth if augment else 0
    self.augment = augment
    self.preconditioned = preconditioned
    self.context = context
    self.network_dtype = network_dtype
    self.noise_nets = []

  def _widths(self, c):
    return [c + i * self.growth for i in range(len(self.units))]

  def build(self, input_shape):
    *rest, c = input_shape
    widths = self._widths(c)
    for unit, width in zip(self.units, widths):
      unit.build((*rest, width))
      out = unit.compute_output_shape((*rest, width))
      if tuple(out)[-3:] != (*rest, width)[-3:]:
        raise ValueError(f"A CrossUnitBlock unit must keep its input shape {(*rest, width)}; "
                         f"it gives {out}.")
    if self.augment and self.preconditioned:
      # representations z₀ (the block input, C channels), z₁ … z_{i−1}: unit
      # j's output has widths[j] channels.
      reps = [c] + widths[:-1]
      self.noise_nets = []
      for i in range(1, len(self.units)):
        net = CrossUnitNet(self.growth, dtype=self.network_dtype or self.dtype_policy,
                           name=f"g_{i}")
        in_c = sum(reps[:i]) if self.context == "all" else reps[i - 1]
        net.build((*rest, in_c))
        self.noise_nets.append(net)

  def compute_output_shape(self, input_shape):
    *rest, c = input_shape
    return (*rest, self._widths(c)[-1])

  def coupling(self, i, reps):
    """The cross-unit coupling bijector before unit i ≥ 1, given z₀ … z_{i−1}."""
    if not self.preconditioned:
      return CrossUnitCoupling(self.growth, name=f"{self.name}_h{i}")
    context = tf.concat(reps, axis=-1) if self.context == "all" else reps[-1]
    return CrossUnitCoupling(self.growth, network=self.noise_nets[i - 1], context=context,
                             name=f"{self.name}_h{i}")

  def augmentation(self, i, x, reps, noise):
    """([x, μ + σ e], Σ log σ − log N(e)) for the augmentation before unit i ≥ 1, given
    the representations z₀ … z_{i−1} (`reps`) and the block's noise.

    One evaluation of g: the coupling bijector's own `params` give μ and log σ.
    """
    shape = [tf.shape(x)[0], *x.shape[1:-1], self.growth]
    e = tf.cast(noise.normal(shape, stream=i), x.dtype)
    log_w = tf.reduce_sum(0.5 * tf.square(e) + _HALF_LOG_2PI, axis=[-3, -2, -1])  # −log N(e)
    if self.preconditioned:
      mu, log_sigma = self.coupling(i, reps).params(x.dtype)
      e = mu + tf.exp(log_sigma) * e
      log_w += tf.reduce_sum(log_sigma, axis=[-3, -2, -1])
    return tf.concat([x, e], axis=-1), log_w

  def _run(self, x, noise, step):
    total = 0.
    reps = [x]  # z₀, then each unit's output before augmentation
    for i, unit in enumerate(self.units):
      if i > 0 and self.augment:
        x, log_w = self.augmentation(i, x, reps[:i], noise)
        total += log_w
      x, log_det = step(unit, x)
      total += log_det
      reps.append(x)
    return x, total

  def forward_and_bound(self, x, noise, training=False):
    return self._run(x, noise, lambda u, v: u.forward_and_log_det(v, 3, training=training))

  def initialize(self, x, noise):
    return self._run(x, noise, lambda u, v: (u.initialize(v), 0.))[0]

  def generate(self, z, noise, temperature=1.0):
    for i in reversed(range(len(self.units))):
      z = inverse_of(self.units[i], z)
      if i > 0 and self.augment:
        z = z[..., :-self.growth]
    return z

  def is_initialized(self):
    return all(is_initialized(u) for u in self.units)

  def get_config(self):
    return {**super().get_config(), "growth": self.growth, "augment": self.augment,
            "preconditioned": self.preconditioned, "context": self.context,
            "network_dtype": self.network_dtype}
