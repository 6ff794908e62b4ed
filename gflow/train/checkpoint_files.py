"""Which checkpoints in a directory can be trusted, found from the files themselves.

TensorFlow finds "the latest checkpoint" through the small `checkpoint` index
file; when that file is damaged it reports none, and a trainer would start again
from step 0 and overwrite the run. Here the candidates are the `ckpt-<step>.index`
files on disk, newest first; a candidate is intact when its index and every
tensor of its data shards read back. A damaged newer checkpoint is renamed
aside (`ckpt-<step>.corrupt.index`, …), never deleted or overwritten, and the
index file is rewritten to list the intact ones.
"""

import glob
import os
import re

import tensorflow as tf

__all__ = ["NoIntactCheckpoint", "intact_latest", "checkpoint_steps", "verify"]

_INDEX = re.compile(r"^ckpt-(\d+)\.index$")


class NoIntactCheckpoint(ValueError):
  """Checkpoints exist but none of them can be read."""


def checkpoint_steps(directory):
  """{step: path prefix} of the `ckpt-<step>` checkpoints in `directory`."""
  if not os.path.isdir(directory):
    return {}
  out = {}
  for name in os.listdir(directory):
    m = _INDEX.match(name)
    if m:
      out[int(m.group(1))] = os.path.join(directory, f"ckpt-{m.group(1)}")
  return out


def verify(prefix):
  """None if the checkpoint at `prefix` reads back whole, else why not (one line)."""
  try:
    reader = tf.train.load_checkpoint(prefix)
    for key in reader.get_variable_to_shape_map():
      reader.get_tensor(key)
  except Exception as e:  # noqa: BLE001 — any failure to read back is damage (TF raises
    # OpErrors, but also IndexError for a truncated shard)
    message = getattr(e, "message", None) or str(e) or type(e).__name__
    return message.strip().splitlines()[0][:300]
  return None


def _set_aside(prefix):
  for path in glob.glob(glob.escape(prefix) + ".*"):
    suffix = path[len(prefix):]
    os.replace(path, f"{prefix}.corrupt{suffix}")


def intact_latest(directory, log=print, repair=True):
  """The newest intact checkpoint's prefix in `directory` (None if there is none at
  all). With `repair`, damaged newer ones are set aside with a message and the index
  file is rewritten when it does not name the intact one; without, nothing is
  touched (readers: `gflow.load`, `gflow-eval`). NoIntactCheckpoint if checkpoints
  exist and none reads back."""
  steps = checkpoint_steps(directory)
  if not steps:
    return None
  bad = []
  for step in sorted(steps, reverse=True):
    problem = verify(steps[step])
    if problem is None:
      break
    bad.append((steps[step], problem))
  else:
    listing = "; ".join(f"{os.path.basename(p)}: {why}" for p, why in bad)
    raise NoIntactCheckpoint(
        f"No checkpoint in {directory} can be read ({listing}). Nothing was overwritten; "
        "move the directory away to start afresh, or restore it from a backup.")
  if not repair:
    for prefix, problem in bad:
      log(f"Checkpoint {prefix} is damaged ({problem}); using an older one.")
    return steps[step]
  for prefix, problem in bad:
    _set_aside(prefix)
    log(f"Checkpoint {prefix} is damaged ({problem}); set aside as "
        f"{os.path.basename(prefix)}.corrupt.*, resuming from an older one.")
  latest = steps[step]
  try:
    state = tf.train.get_checkpoint_state(directory)
    named = state.model_checkpoint_path if state else None
  except Exception:  # noqa: BLE001 — a garbled index file: rewrite it below
    named = None
  if named is None or os.path.basename(named) != os.path.basename(latest):
    log(f"Rewrote the checkpoint index of {directory} (it named "
        f"{os.path.basename(named) if named else 'nothing readable'}).")
    kept = [steps[s] for s in sorted(steps) if s <= step]
    tf.compat.v1.train.update_checkpoint_state(directory, latest, all_model_checkpoint_paths=kept)
  return latest
