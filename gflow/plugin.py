"""The plugin API: what a gflow plugin object provides.

A distribution registers a plugin with an entry point in the group
`gflow.plugins`, named after its model:

    [project.entry-points."gflow.plugins"]
    myflow = "myflow.plugin:PLUGIN"

`PLUGIN` is a `gflow.Plugin`. Every field but `name` is optional:

- `build_model(model_config, event_shape) -> model`: the model named `name`
  (`--config.model.name=<name>`), trained with any config file whose `model`
  fields the builder reads. The model follows the protocol of `gflow.model`
  (loss, initialisation, evaluation figures, generation, output writer and the
  Keras layer owning every variable); `gflow.Flow` and `gflow.AugmentedFlow`
  follow it for image flows.
- `data_sources`: name → factory `f(data_config) -> gflow.data.DataSource`,
  selected by `--config.data.name=<name>`.
- `bijectors`: name → zero-argument factory returning a `BijectorExample`, a
  bijector with an input to check it on. `gflow.testing.check_bijector` runs
  the shared contract on every one, and `gflow-list` shows them.
- `description`: one line for `gflow-list`.
"""

import dataclasses
from typing import Any, Callable, Mapping, Optional

__all__ = ["Plugin", "BijectorExample"]


@dataclasses.dataclass(frozen=True)
class BijectorExample:
  """A bijector and an input on which the contract check exercises it.

  `event_ndims` is the number of trailing dimensions of `x` that form one event.
  `owner` keeps the Keras layers that hold the bijector's variables alive.
  `layer`, if set, is the `gflow.layers.FlowLayer` that built `bijector`: its
  one-pass `forward_and_log_det` is checked against it (`check_flow_layer`).
  `conditioning` is passed to both when the layer is conditional.
  """
  bijector: Any
  x: Any
  event_ndims: int
  owner: Any = None
  layer: Any = None
  conditioning: Any = None


@dataclasses.dataclass(frozen=True)
class Plugin:
  name: str
  build_model: Optional[Callable[..., Any]] = None
  bijectors: Mapping[str, Callable[[], BijectorExample]] = dataclasses.field(
      default_factory=dict)
  data_sources: Mapping[str, Callable[..., Any]] = dataclasses.field(default_factory=dict)
  description: str = ""
