"""What every gflow distribution over images shares: a Keras owner and a fixed event shape."""

import tensorflow as tf
import tensorflow_probability as tfp

tfd = tfp.distributions

__all__ = ["LayerDistribution"]


class LayerDistribution(tfd.Distribution):
  """A scalar-batch distribution over events of a fixed shape whose variables all
  belong to one Keras layer (`layer`), so training, checkpoints and strategies
  see every one of them."""

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
