"""Where DenseFlow's training step (or its sampler) spends its time, by TensorFlow
operation type.

Builds the model (XLA off, shared traces on), runs two warm-up calls, records one
with the TensorFlow profiler and prints each operation type's self time, its share
and its count, from the profile's framework op statistics. "IDLE" is time the
profiler's threads waited (on 2 cores: one core without work). `--what=sample`
profiles drawing `--batch` images at temperature 1 (`model.sample`, as
`denseflow_step.py --samples` times it) instead of a training step.

    python benchmarks/denseflow_op_profile.py --config=45-6 --batch=8
    python benchmarks/denseflow_op_profile.py --config=74-10 --network_dtype=mixed_bfloat16
    python benchmarks/denseflow_op_profile.py --config=74-10 --what=sample --batch=128
"""

import argparse
import collections
import glob
import json
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="45-6", choices=("45-6", "74-10"))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--network_dtype", default="", help="e.g. mixed_bfloat16")
  p.add_argument("--top", type=int, default=20)
  p.add_argument("--what", default="step", choices=("step", "sample"))
  args = p.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import tensorflow as tf
  from tensorflow.python.profiler.internal import _pywrap_profiler_plugin as plugin

  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  import random_denseflow

  from gflow.layers.shared_trace import shared_trace_scope
  from gflow.noise import Noise
  from gflow.train.trainer import OPTIMIZERS
  model, x = random_denseflow.build(args.config, args.batch, args.network_dtype)
  variables = list(model.trainable_variables)
  opt = OPTIMIZERS["adamax"](1e-3)
  opt.build(variables)

  @tf.function(autograph=model.autograph)
  def step(x, seed):
    with tf.GradientTape() as tape, shared_trace_scope(True):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    opt.apply(tape.gradient(loss, variables), variables)
    return loss

  sample = tf.function(lambda seed: model.sample(args.batch, seed=seed))
  call = (lambda i: step(x, tf.constant([i, 0]))) if args.what == "step" else (
      lambda i: sample(tf.constant([i, 0])))
  for i in range(2):
    call(i).numpy()
  with tempfile.TemporaryDirectory() as logdir:
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    call(2).numpy()
    seconds = time.perf_counter() - t0
    tf.profiler.experimental.stop()
    path = glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True)[-1]
    data, ok = plugin.xspace_to_tools_data([path], "framework_op_stats", {})
  if not ok:
    raise SystemExit("The profiler gave no op statistics.")
  table = json.loads(data)[0]
  cols = [c["id"] for c in table["cols"]]
  kind, self_us, count = (cols.index(k) for k in ("type", "total_self_time", "occurrences"))
  time_by, count_by = collections.Counter(), collections.Counter()
  for row in table["rows"]:
    cells = [c["v"] if c else None for c in row["c"]]
    time_by[cells[kind]] += cells[self_us]
    count_by[cells[kind]] += cells[count]
  total = sum(time_by.values())
  print(f"DenseFlow-{args.config}, batch {args.batch}, "
        f"{args.network_dtype or 'float32'}: one {args.what} {seconds:.2f} s wall, "
        f"{total / 1e6:.2f} s of profiled thread time")
  print(f"{'operation type':44} {'self ms':>9} {'share':>6} {'count':>6}")
  for name, us in time_by.most_common(args.top):
    print(f"{name:44} {us / 1e3:9.1f} {100 * us / total:5.1f}% {count_by[name]:6.0f}")


if __name__ == "__main__":
  main()
