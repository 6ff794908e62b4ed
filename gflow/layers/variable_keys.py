"""Every variable of a Keras layer tree, keyed by its place in the tree.

Keras numbers layer names globally, so `variable.path` depends on how many layers
the process built before; a position in `layer.variables` pairs any two variables
of the same shape. The key here is structural instead: the attribute names (and
list indices) that lead from the root layer to the layer that created the
variable, then the variable's own name, e.g.
`flow.flow_layers.1.inner.network.conv1.kernel`. A renamed or moved variable is
a different key. Checkpoints are keyed this way (`gflow.train.checkpoint`), and
`gflow.layers.StackedFlow` names its stacked variables by their module's keys.
"""

import keras

__all__ = ["model_variables"]


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
