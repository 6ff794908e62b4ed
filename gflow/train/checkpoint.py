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

__all__ = ["model_variables", "check_model_entries", "CheckpointMismatch", "trackable"]


class CheckpointMismatch(ValueError):
  """A checkpoint whose model variables do not match the model built from the config."""


def _own_variables(layer):
  return list(layer._trainable_variables) + list(layer._non_trainable_variables)


def _children(value, prefix):
  """(path, sub-layer) pairs held by an attribute value (a layer, or lists/dicts of them)."""
  if isinstance(value, keras.layers.Layer):
    return [(prefix, value)]
  if isinstance(value, (list, tuple)):
    return [c for i, v in enumerate(value) for c in _children(v, f"{prefix}.{i}")]
  if isinstance(value, dict):
    return [c for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))
            for c in _children(v, f"{prefix}.{k}")]
  return []


def _walk(layer, path, seen, out):
  if id(layer) in seen:  # a shared network: keyed where it is first reached
    return
  seen.add(id(layer))
  names = {}
  for v in _own_variables(layer):
    name = v.name.rsplit("/", 1)[-1]
    count = names.get(name, 0)
    names[name] = count + 1
    key = f"{path}.{name}" if path else name
    out[key if count == 0 else f"{key}_{count}"] = v
  children = []
  for attr, value in sorted(vars(layer).items()):
    if not attr.startswith("_"):
      children += _children(value, f"{path}.{attr}" if path else attr)
  reached = {id(c) for _, c in children}
  # Sub-layers only Keras knows of (private attributes of built-in layers).
  children += [(f"{path}._layers.{i}" if path else f"_layers.{i}", c)
               for i, c in enumerate(layer._layers) if id(c) not in reached]
  for child_path, child in children:
    _walk(child, child_path, seen, out)


def model_variables(layer):
  """{structural path: variable} for every variable of a Keras layer tree, sorted by key.

  Raises ValueError if a variable of `layer.variables` is not reached (a layer
  that hides its sub-layers from both its attributes and Keras).
  """
  out = {}
  _walk(layer, "", set(), out)
  found = {id(v) for v in out.values()}
  missing = [v.path for v in layer.variables if id(v) not in found]
  if missing:
    raise ValueError(f"Variables of {layer.name} not reachable through layer attributes: "
                     f"{missing[:5]}. Hold sub-layers in attributes (or lists/dicts of them).")
  return dict(sorted(out.items()))


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
