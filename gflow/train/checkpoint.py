"""What a checkpoint holds of a model: its variables, keyed by their place in the layer tree.

Keras 3 keeps sub-layers in lists that TensorFlow's object-graph checkpoint does
not descend into (a `tf.train.Checkpoint(model=layer)` silently saves nothing of
them), so the variables are tracked themselves, in a dict keyed by structural
path: the attribute names (and list indices) that lead from the model's layer to
the layer that created the variable, then the variable's own name, e.g.
`flow.flow_layers.1.inner.network.conv1.kernel`. Unlike Keras's `variable.path`,
the key does not depend on how many layers the process built before (Keras
numbers layer names globally); unlike a position, it cannot silently pair two
same-shaped variables after a refactor: a renamed or moved variable is a
missing key, which restoring reports by name.
"""

import keras
import tensorflow as tf

from gflow.layers.variable_keys import model_variables

__all__ = ["model_variables", "check_model_entries", "CheckpointMismatch", "trackable"]


class CheckpointMismatch(ValueError):
  """A checkpoint whose model variables do not match the model built from the config."""


def trackable(variables):
  """{key: tf.Variable} that `tf.train.Checkpoint` tracks (Keras variables unwrapped)."""
  return {k: (v.value if isinstance(v, keras.Variable) else v) for k, v in variables.items()}


def check_model_entries(path, variables):
  """Raises CheckpointMismatch unless the checkpoint at `path` holds exactly the keys of
  `variables` ({key: variable}) with the same shapes, naming what differs."""
  try:
    shapes = tf.train.load_checkpoint(path).get_variable_to_shape_map()
  except (tf.errors.OpError, ValueError) as e:
    raise CheckpointMismatch(f"Cannot read the checkpoint {path}: "
                             f"{getattr(e, 'message', e)}") from None
  prefix, suffix = "model/", "/.ATTRIBUTES/VARIABLE_VALUE"
  saved = {k[len(prefix):-len(suffix)]: s for k, s in shapes.items()
           if k.startswith(prefix) and k.endswith(suffix)}
  saved = {_unescape(k): s for k, s in saved.items()}
  if saved and all(k.isdigit() for k in saved):
    raise CheckpointMismatch(
        f"{path} was written by an older gflow that keyed model variables by position; "
        "this version keys them by path in the layer tree and cannot pair them safely. "
        "Retrain, or restore it with the gflow version that wrote it.")
  missing = sorted(set(variables) - set(saved))
  extra = sorted(set(saved) - set(variables))
  if missing or extra:
    raise CheckpointMismatch(
        f"{path} does not match the model built from the config (the config or the code "
        f"changed): {len(missing)} model variables missing from the checkpoint "
        f"{missing[:3]}, {len(extra)} in the checkpoint but not in the model {extra[:3]}.")
  for k, v in variables.items():
    if list(saved[k]) != list(v.shape):
      raise CheckpointMismatch(f"{path}: model variable {k} has shape {saved[k]} in the "
                               f"checkpoint but {list(v.shape)} in the model.")


def _unescape(key):
  """Object-graph keys escape '/' as '.S' and '.' as '..'."""
  out, i = [], 0
  while i < len(key):
    if key[i] == "." and i + 1 < len(key) and key[i + 1] == "S":
      out.append("/")
      i += 2
    elif key[i] == "." and i + 1 < len(key) and key[i + 1] == ".":
      out.append(".")
      i += 2
    else:
      out.append(key[i])
      i += 1
  return "".join(out)
