"""Kill a training process with SIGKILL once it has checkpointed a given step, then
resume it with the same command: what the resume-after-kill tests share."""

import signal
import subprocess
import time

import tensorflow as tf

from tests.conftest import REPO


def checkpoint_values(directory):
  """(path, {key: value}) of the latest checkpoint in `directory`."""
  path = tf.train.latest_checkpoint(directory)
  reader = tf.train.load_checkpoint(path)
  return path, {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if not k.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")}


def _latest_step(directory):
  latest = tf.train.latest_checkpoint(str(directory)) if directory.exists() else None
  return int(latest.rsplit("-", 1)[1]) if latest else -1


def kill_then_resume(cmd, workdir, kill_after, timeout=300):
  """Runs `cmd` (a gflow-train command for `workdir`, a pathlib.Path), SIGKILLs it
  once a checkpoint at step >= `kill_after` exists, and runs `cmd` again to the end.
  Returns (the step it resumed from, the values of that checkpoint, the resumed
  run's stdout)."""
  ckpt = workdir / "checkpoints"
  proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  deadline = time.time() + timeout
  while time.time() < deadline and proc.poll() is None and _latest_step(ckpt) < kill_after:
    time.sleep(0.05)
  proc.send_signal(signal.SIGKILL)
  proc.wait()
  assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
  killed_at = _latest_step(ckpt)
  assert killed_at >= kill_after, f"no checkpoint at step >= {kill_after} within {timeout} s"
  _, at_kill = checkpoint_values(str(ckpt))
  out = subprocess.run(cmd, cwd=REPO, check=True, capture_output=True, text=True).stdout
  assert "Resumed from" in out and f"step {killed_at})" in out, out
  return killed_at, at_kill, out
