"""The run's best checkpoint by its test figure, kept beside the last ones.

`checkpoints/best/` holds one checkpoint (`best-<step>`) and `best.json` with the
figure, its value and the step, so a resumed run keeps comparing against the best
of the whole run. Which figure and which direction the model says (the first of
its evaluation figures; lower is better unless named in `higher_is_better`).
"""

import json
import math
import os

import tensorflow as tf

__all__ = ["BestCheckpoint"]


class BestCheckpoint:
  """Saves `checkpoint` to `directory` when offered a better figure than its record."""

  def __init__(self, checkpoint, directory):
    self.directory = directory
    self._manager = None
    self._checkpoint = checkpoint
    self._record_path = os.path.join(directory, "best.json")
    self.path = None

  @property
  def record(self):
    """{"figure", "value", "step", "path"} of the best so far, or None."""
    if not os.path.isfile(self._record_path):
      return None
    with open(self._record_path) as f:
      try:
        return json.load(f)
      except json.JSONDecodeError:
        return None  # a damaged record: the next evaluation writes a new one

  def offer(self, step, figure, value, higher_is_better=False):
    """Saves a checkpoint if `value` of `figure` beats the record; True if it did."""
    if not math.isfinite(value):
      return False
    best = self.record
    if best is not None and best.get("figure") == figure:
      if best["step"] == step:
        return False
      if (value <= best["value"]) if higher_is_better else (value >= best["value"]):
        return False
    if self._manager is None:
      self._manager = tf.train.CheckpointManager(self._checkpoint, self.directory,
                                                 max_to_keep=1, checkpoint_name="best")
    self.path = self._manager.save(checkpoint_number=step)
    tmp = self._record_path + ".tmp"
    with open(tmp, "w") as f:
      json.dump(dict(figure=figure, value=value, step=step, path=os.path.basename(self.path)), f)
    os.replace(tmp, self._record_path)
    return True
