"""What every gflow distribution over images shares: a Keras owner, a fixed event shape,
and the model protocol (`gflow.model`) in bits/dim."""

import tensorflow as tf
import tensorflow_probability as tfp

from gflow.io.outputs import ImageGrid

tfd = tfp.distributions

__all__ = ["LayerDistribution"]


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
