"""The data source protocol: what `config.data` names, for any kind of example.

A source yields batches as dicts of tensors: `"x"` (images, waveforms, …) and,
for conditional models, `"conditioning"`. What makes resume and scale-out
exact lives here: the training stream is a stateless function of (seed, step),
so a resumed run sees the batches the uninterrupted run would have, and the
global batch at a step is the same under any number of replicas or workers
(`gflow.data.distribute` slices it).
"""

import collections

__all__ = ["Baseline", "DataSource"]

Baseline = collections.namedtuple("Baseline", "label figure values description")
Baseline.__doc__ = """A reference model's per-item test `values` of the model figure `figure`."""


class DataSource:
  """Base class. Subclasses have a `name` (for logs and run.json) and implement:

  * `element_spec`: dict of `tf.TensorSpec` of one example (no batch axis).
  * `num_train`, `num_test`: example counts (of training examples and of whole
    test items: images, clips).
  * `train_dataset(global_batch, seed, start_step)`: endless global batches;
    batch k is a function of (seed, start_step + k) only.
  * `eval_dataset(batch_size, seed, limit=0)`: the test set in a fixed order,
    once (the last batch may be short; `limit` keeps the first items).

  and may override `baselines(seed, limit)`.
  """

  @property
  def element_spec(self):
    raise NotImplementedError

  @property
  def event_shape(self):
    """The shape of one example's `"x"`: what a model is built for."""
    return tuple(self.element_spec["x"].shape)

  @property
  def num_train(self):
    raise NotImplementedError

  @property
  def num_test(self):
    raise NotImplementedError

  def train_dataset(self, global_batch, seed, start_step=0):
    raise NotImplementedError

  def eval_dataset(self, batch_size, seed, limit=0):
    raise NotImplementedError

  def baselines(self, seed, limit=0):
    """Reference figures a model of this data should beat: a list of `Baseline`s
    (none by default; audio sources give the Gaussian of `gflow.data.baseline`)."""
    return []

  def describe(self):
    """One line for logs and `gflow-info`."""
    shapes = ", ".join(f"{k} {'x'.join(map(str, s.shape)) or 'scalar'}"
                       for k, s in self.element_spec.items())
    return f"{self.name}: {shapes}"

