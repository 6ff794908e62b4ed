"""What a checkpoint holds of a model: its variables, in Keras's deterministic order."""

import keras

__all__ = ["model_variables"]


def model_variables(layer):
  """Every variable of a Keras layer tree as the `tf.Variable`s to checkpoint.

  Keras 3 keeps sub-layers in lists that TensorFlow's object-graph checkpoint
  does not descend into (a `tf.train.Checkpoint(model=layer)` silently saves
  nothing of them), so the variables are tracked themselves. Their order is
  Keras's traversal of the layer tree: the same for the same architecture,
  whatever names the layers got.
  """
  return [v.value if isinstance(v, keras.Variable) else v for v in layer.variables]


def check_model_entries(path, variables):
  """Raises ValueError unless the checkpoint at `path` holds one value per model
  variable with the same shape (a changed config or architecture fails loudly)."""
  import tensorflow as tf
  shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  saved = {int(k.split("/")[1]): shape for k, shape in shapes.items()
           if k.startswith("model/") and k.endswith("VARIABLE_VALUE")}
  if len(saved) != len(variables):
    raise ValueError(f"{path} holds {len(saved)} model variables but the model built from "
                     f"the config has {len(variables)}: the config or the code changed.")
  for i, v in enumerate(variables):
    if list(saved[i]) != list(v.shape):
      raise ValueError(f"{path}: model variable {i} ({v.name}) has shape {saved[i]} in the "
                       f"checkpoint but {list(v.shape)} in the model.")
