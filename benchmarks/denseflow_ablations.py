"""What a part of DenseFlow's training step costs: the step with that part changed, side
by side with the step as it is.

One model, one batch of random images; a training step (loss, gradients, Adamax
update; graph, shared traces, XLA off) traced once per variant of `--variants`, each
variant patching gflow while its step is traced; the steps are then called in turn for
`--rounds` rounds (the order reversed every other round) and each variant's median
printed with its median per-round ratio to the first variant. Some variants compute
wrong values on purpose: they measure a cost, not a model.

  base          gflow as it is
  concat        the stacked variables' gradients stacked by `tf.concat`, not `tf.stack`
  zeros_sum     those gradients replaced by zeros plus a sum over every module's
                gradient (no `Pack`; every gradient still computed)
  no_stacked    no gradient for the stacked variables (Grappler then prunes the
                convolutions' filter gradients: what they cost)
  reshape       the filter gradients' transposes replaced by reshapes (wrong values,
                the same convolutions: what the transposes cost)

    python benchmarks/denseflow_ablations.py --config=74-10 --batch=8 --rounds=4
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = ("base", "concat", "zeros_sum", "no_stacked", "reshape")


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="74-10", choices=("74-10", "45-6"))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--rounds", type=int, default=4)
  p.add_argument("--variants", default="base,concat,zeros_sum,reshape")
  args = p.parse_args()
  variants = args.variants.split(",")
  if not set(variants) <= set(VARIANTS):
    raise SystemExit(f"--variants: any of {', '.join(VARIANTS)}; got {args.variants!r}")
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path[:0] = [REPO, os.path.join(REPO, "benchmarks")]
  import numpy as np
  import tensorflow as tf

  import random_denseflow
  from gflow.layers.shared_trace import shared_trace_scope
  from gflow.noise import Noise
  from gflow.train.trainer import OPTIMIZERS
  current = _patch_gflow()
  model, x = random_denseflow.build(args.config, args.batch)
  variables = list(model.trainable_variables)
  optimizer = OPTIMIZERS["adamax"](1e-3)
  optimizer.build(variables)

  def step(x, seed):
    with tf.GradientTape() as tape, shared_trace_scope(True):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    optimizer.apply(tape.gradient(loss, variables), variables)
    return loss

  steps = {}
  for variant in variants:
    current["variant"] = variant
    steps[variant] = tf.function(step, autograph=model.autograph)
    start = time.perf_counter()
    steps[variant](x, tf.constant([0, 0])).numpy()  # traced now, under this variant
    print(f"{variant}: traced and first call in {time.perf_counter() - start:.1f} s", flush=True)
  times = {v: [] for v in variants}
  for i in range(args.rounds):
    for variant in (variants if i % 2 == 0 else variants[::-1]):
      start = time.perf_counter()
      steps[variant](x, tf.constant([i + 1, 0])).numpy()
      times[variant].append(time.perf_counter() - start)
    print(f"round {i}: " + ", ".join(f"{v} {times[v][-1]:.2f} s" for v in variants), flush=True)
  for variant in variants:
    ratio = np.median(np.array(times[variants[0]]) / np.array(times[variant]))
    print(f"{variant}: median {np.median(times[variant]):.2f} s/step, "
          f"{variants[0]}/{variant} per round: median {ratio:.3f}", flush=True)


def _patch_gflow():
  """Makes StackedFlow's slices and Conv2D's filter gradient follow `current["variant"]`
  at trace time; returns `current`."""
  import tensorflow as tf

  from gflow.layers import stacked
  from gflow.nets import conv2d
  current = {"variant": "base"}
  slices, filter_gradient = stacked.StackedFlow._slices, conv2d._filter_gradient

  def unstack(value, count):
    @tf.custom_gradient
    def split(value):
      def grad(*dys):
        dys = [tf.zeros_like(value[0]) if d is None else d for d in dys]
        if current["variant"] == "concat":
          return tf.concat([d[None] for d in dys], 0)
        if current["variant"] == "zeros_sum":
          return tf.zeros_like(value) + 0. * tf.add_n([tf.reduce_sum(d) for d in dys])
        return tf.zeros_like(value)  # no_stacked
      return tf.unstack(value, num=count), grad
    return split(value)

  def patched_slices(self):
    if current["variant"] not in ("concat", "zeros_sum", "no_stacked"):
      return slices(self)
    per_variable = [unstack(tf.convert_to_tensor(v), self.count) for v in self._aligned]
    return [[s[i] for s in per_variable] for i in range(self.count)]

  def patched_filter_gradient(x, dy, kernel_size):
    if current["variant"] != "reshape" or tuple(kernel_size) == (1, 1):
      return filter_gradient(x, dy, kernel_size)
    (kh, kw), (n, h, w, c), o = kernel_size, x.shape, dy.shape[-1]
    ph, pw = (kh - 1) // 2, (kw - 1) // 2
    padded = tf.pad(x, [[0, 0], [ph, ph], [pw, pw], [0, 0]])
    dw = tf.nn.conv2d(tf.reshape(padded, [c, h + 2 * ph, w + 2 * pw, n]),
                      tf.reshape(dy, [h, w, n, o]), 1, "VALID")
    return tf.reshape(dw, [kh, kw, c, o])

  stacked.StackedFlow._slices = patched_slices
  conv2d._filter_gradient = patched_filter_gradient
  return current


if __name__ == "__main__":
  main()
