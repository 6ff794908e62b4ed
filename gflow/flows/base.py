"""What every gflow distribution over images shares: a Keras owner, a fixed event shape,
and the model protocol (`gflow.model`) in bits/dim."""

import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from gflow.io.outputs import ImageGrid

tfd = tfp.distributions

__all__ = ["LayerDistribution", "check_temperature"]


def check_temperature(t, where):
  """A Python temperature must be a finite number > 0 (tensors pass unchecked)."""
  if isinstance(t, (int, float, np.integer, np.floating)) and not (math.isfinite(t) and t > 0):
    raise ValueError(f"{where}: temperature must be a finite number > 0; got {t}.")


def data_of(batch):
  """The data of a protocol batch ({"x": …}) or a bare tensor."""
  return batch["x"] if isinstance(batch, dict) else batch


class LayerDistribution(tfd.Distribution):
  """A scalar-batch distribution over events of a fixed shape whose variables all
  belong to one Keras layer (`layer`), so training, checkpoints and strategies
  see every one of them.

  It follows the model protocol (`gflow.model`) for image flows: the loss and
  the evaluation figure are bits/dim (`bits_per_dim` of the subclass), samples
  are quantized images written as a PNG grid.
  """

  loss_name = "bits/dim"
  figure_units = {}  # bits/dim is its own unit
  autograph = False  # no Python control flow on tensors (gflow.model)

  def __init__(self, layer, event_shape, parameters, validate_args, name):
    self._layer = layer
    self._event_shape_static = tf.TensorShape(event_shape)
    if not self._event_shape_static.is_fully_defined():
      raise ValueError(f"{type(self).__name__} needs a fully known event shape; got "
                       f"{event_shape}.")
    super().__init__(
        dtype=tf.float32,
        reparameterization_type=tfd.FULLY_REPARAMETERIZED,
        validate_args=validate_args,
        allow_nan_stats=True,
        parameters=parameters,
        name=name)

  @classmethod
  def _parameter_properties(cls, dtype, num_classes=None):
    return {}

  # -- argument checks shared by the subclasses -------------------------------------------
  def sample(self, sample_shape=(), seed=None, name="sample", **kwargs):
    """TFP's `sample`, refusing empty or negative counts and a temperature that is not
    a finite number > 0 (a NaN would give a black image, not an error)."""
    shape = [sample_shape] if isinstance(sample_shape, (int, np.integer)) else sample_shape
    if isinstance(shape, (list, tuple)) and any(
        isinstance(d, (int, np.integer)) and d < 1 for d in shape):
      raise ValueError(f"{self.name}.sample: every count in sample_shape must be >= 1; "
                       f"got {sample_shape!r}.")
    check_temperature(kwargs.get("temperature", 1.0), f"{self.name}.sample")
    return super().sample(sample_shape, seed=seed, name=name, **kwargs)

  def check_levels(self, x, what):
    """Integer images must lie in [0, num_levels): a ValueError naming the range found
    (eagerly; in a graph, an assertion)."""
    levels = getattr(self, "num_levels", None)
    if levels is None or not x.dtype.is_integer:
      return x
    if tf.executing_eagerly():
      low, high = int(tf.reduce_min(x)), int(tf.reduce_max(x))
      if low < 0 or high >= levels:
        raise ValueError(f"{self.name}.{what}: integer images must lie in [0, {levels}); "
                         f"got values in [{low}, {high}].")
      return x
    with tf.control_dependencies([
        tf.debugging.assert_non_negative(x, message=f"{what}: levels must be >= 0"),
        tf.debugging.assert_less(x, tf.cast(levels, x.dtype),
                                 message=f"{what}: levels must be < {levels}")]):
      return tf.identity(x)

  def flat_batch(self, x, fn):
    """fn over x with any batch shape (none: one unbatched event, as in TFP; several
    axes): the layers see [N, *event]; the result gets x's batch shape back."""
    n = self._event_shape_static.rank
    if x.shape.rank == n + 1:
      return fn(x)
    batch = tf.shape(x)[:tf.rank(x) - n]
    out = fn(tf.reshape(x, tf.concat([[-1], tf.shape(x)[-n:]], 0)))
    return tf.reshape(out, batch)

  @property
  def layer(self):
    """The Keras layer that owns every variable of the model."""
    return self._layer

  @property
  def outputs(self):
    return ImageGrid()

  def loss(self, batch, seed, training=False):
    """Per-example bits/dim (a bound for dequantized or augmented models)."""
    return self.bits_per_dim(data_of(batch), seed=seed, training=training)

  def evaluate(self, batch, seed, num_samples=1, chunk_size=None):
    return {"bits/dim": self.bits_per_dim(data_of(batch), seed=seed, num_samples=num_samples,
                                          chunk_size=chunk_size)}

  def generate(self, n, seed, temperature=1.0, conditioning=None):
    """n integer images at `temperature`."""
    if isinstance(n, (int, np.integer)) and n < 1:
      raise ValueError(f"{self.name}.generate: n must be >= 1; got {n}.")
    check_temperature(temperature, f"{self.name}.generate")
    if conditioning is not None:
      raise ValueError(f"{self.name} is unconditional; got a conditioning input.")
    return self.quantize(self.sample(n, seed=seed, temperature=temperature))

  @property
  def trainable_variables(self):
    return tuple(self._layer.trainable_variables)

  @property
  def variables(self):
    return tuple(self._layer.variables)

  @property
  def num_dims(self):
    return self._event_shape_static.num_elements()

  def _event_shape(self):
    return self._event_shape_static

  def _event_shape_tensor(self):
    return tf.constant(self._event_shape_static.as_list(), tf.int32)

  def _batch_shape(self):
    return tf.TensorShape([])

  def _batch_shape_tensor(self):
    return tf.constant([], tf.int32)
