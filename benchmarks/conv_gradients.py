"""gflow.nets.Conv2D's gradients by forward convolutions against TensorFlow's gradient kernels.

Shapes (`--what=shapes`): for convolutions of DenseFlow-74-10's and Glow's coupling
networks (batch `--batch`), the milliseconds of one forward convolution with both of
its gradients in a `tf.function`, TensorFlow's kernels ("native") against forward
convolutions ("forward"), the two called alternately `--repeats` times; the best time
of each and their ratio.

A training step (`--what=denseflow-74-10`, `denseflow-45-6` or `glow`): one model, one
batch of random images, a training step (gradients and an Adamax update) traced once
per mode of `--modes` (`gflow.nets.conv_gradients`; default "native" and "auto",
gflow's default), each called once on the same weights to compare loss and gradient
norm, then in turn for `--rounds` rounds (the order reversed every other round); each
call's seconds, the medians, and the ratio first/last mode paired by round (> 1: the
last faster). `--xla=modules`: XLA compiles each of DenseFlow's shared modules (its
configs' default); `--xla=step`: the whole step (with "auto", TensorFlow's gradients
inside XLA). On a noisy machine only the paired ratio means much.

    python benchmarks/conv_gradients.py --what=shapes
    python benchmarks/conv_gradients.py --what=denseflow-74-10 --batch=8 --rounds=6
    python benchmarks/conv_gradients.py --what=glow --batch=16 --rounds=10
"""

import argparse
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("native", "forward")  # the shapes' columns
# (height = width, input channels, output channels, kernel size, activation): DenseFlow's
# dense blocks (growth 64 onto width 48; 1x1 mixes and 3x3 grows), its cross-unit 3x3,
# Glow's 3x3 and 1x1 at width 128 and 512.
SHAPES = [(16, 48, 64, 3, "relu"), (16, 432, 64, 3, "relu"), (16, 240, 240, 1, "relu"),
          (16, 496, 144, 1, None), (8, 304, 64, 3, "relu"), (8, 432, 432, 1, "relu"),
          (4, 432, 64, 3, "relu"), (16, 12, 48, 3, "relu"), (16, 6, 128, 3, None),
          (16, 128, 128, 1, None), (8, 512, 512, 3, None)]


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--what", default="shapes",
                 choices=("shapes", "denseflow-74-10", "denseflow-45-6", "glow"))
  p.add_argument("--batch", type=int, default=8)
  p.add_argument("--repeats", type=int, default=20, help="shapes: timed calls per mode")
  p.add_argument("--rounds", type=int, default=6, help="a step: timed calls per mode")
  p.add_argument("--modes", default="native,auto",
                 help="a step: the modes compared (the ratio: first/last), any of "
                      "native, auto, forward")
  p.add_argument("--xla", default="off", choices=("off", "modules", "step"),
                 help="modules: XLA compiles each of DenseFlow's shared modules "
                      "(train.jit_scope=modules); step: the whole step")
  args = p.parse_args()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  sys.path.insert(0, REPO)
  from gflow.xla_cpu_flags import set_xla_cpu_defaults
  set_xla_cpu_defaults()
  import tensorflow as tf
  print(f"TF {tf.__version__}, cpus {os.cpu_count()}, TF_ENABLE_ONEDNN_OPTS="
        f"{os.environ.get('TF_ENABLE_ONEDNN_OPTS', '')!r}, what {args.what}, batch {args.batch}, "
        f"xla {args.xla}",
        flush=True)
  if args.what == "shapes":
    shapes(args)
  else:
    training_step(args)


def shapes(args):
  import keras
  import numpy as np
  import tensorflow as tf

  from gflow.nets import Conv2D, conv_gradients
  print(f"{'HxW':>5} {'in':>4} {'out':>4} {'k':>2} {'act':>5}  {'native ms':>9} "
        f"{'forward ms':>10} {'native/forward':>14}", flush=True)
  for hw, c, o, k, act in SHAPES:
    layer = Conv2D(o, k, padding="same", activation=act)
    x = tf.random.normal((args.batch, hw, hw, c))
    layer.build(x.shape)
    steps = {}
    for mode in MODES:
      with conv_gradients(mode):
        @tf.function
        def step(x):
          with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x)
          return tape.gradient(y, [x] + layer.trainable_variables, output_gradients=y)
        step.get_concrete_function(x)
      steps[mode] = step
    times = {mode: [] for mode in MODES}
    for _ in range(3):  # warm-up
      for step in steps.values():
        step(x)[0].numpy()
    for _ in range(args.repeats):
      for mode, step in steps.items():
        start = time.perf_counter()
        step(x)[0].numpy()
        times[mode].append(time.perf_counter() - start)
    best = {mode: 1e3 * min(t) for mode, t in times.items()}
    print(f"{hw:>5} {c:>4} {o:>4} {k:>2} {act or '-':>5}  {best['native']:9.3f} "
          f"{best['forward']:10.3f} {best['native'] / best['forward']:14.2f}", flush=True)
    keras.backend.clear_session()
  del np


def _model(args):
  """(variables, a loss function of a batch and a seed, the batch)."""
  import tensorflow as tf
  sys.path.insert(0, os.path.join(REPO, "benchmarks"))
  if args.what == "glow":
    import glow_step
    gargs = glow_step.parse_args(["--steps=8", "--width=128", f"--batches={args.batch}"])
    x = glow_step.random_images(args.batch, gargs.image, 1)
    model = glow_step.GflowModel(gargs, x)
    return model.variables, lambda x, seed: model.loss(x), x
  import random_denseflow

  from gflow.layers.shared_trace import shared_trace_scope
  from gflow.noise import Noise
  model, x = random_denseflow.build(args.what.split("-", 1)[1], args.batch)

  def loss(x, seed):
    with shared_trace_scope(True, jit_compile=args.xla == "modules"):
      return tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))

  return list(model.trainable_variables), loss, x


def training_step(args):
  modes = tuple(args.modes.split(","))
  if len(modes) < 2 or not set(modes) <= {"native", "auto", "forward"}:
    raise SystemExit(f"--modes needs two or more of native, auto, forward; got {args.modes!r}")
  import numpy as np
  import tensorflow as tf

  from gflow.nets import conv_gradients
  from gflow.train.trainer import OPTIMIZERS
  start = time.perf_counter()
  variables, loss_fn, x = _model(args)
  optimizer = OPTIMIZERS["adamax"](1e-3)
  optimizer.build(variables)
  print(f"model built in {time.perf_counter() - start:.1f} s", flush=True)

  def step(x, seed):
    with tf.GradientTape() as tape:
      loss = loss_fn(x, seed)
    grads = tape.gradient(loss, variables)
    optimizer.apply(grads, variables)
    return loss, tf.linalg.global_norm(grads)

  state = variables + list(optimizer.variables)
  saved = [v.numpy() for v in state]
  steps, first = {}, {}
  for mode in modes:
    steps[mode] = tf.function(step, jit_compile=args.xla == "step")
    start = time.perf_counter()
    with conv_gradients(mode):
      loss, norm = steps[mode](x, tf.constant([0, 0]))
    first[mode] = (float(loss), float(norm))
    print(f"{mode}: traced and first call in {time.perf_counter() - start:.1f} s, loss "
          f"{first[mode][0]:.6f}, gradient norm {first[mode][1]:.6f}", flush=True)
    for v, value in zip(state, saved):
      v.assign(value)
  times = {mode: [] for mode in modes}
  for i in range(args.rounds):
    for mode in (modes if i % 2 == 0 else modes[::-1]):
      start = time.perf_counter()
      steps[mode](x, tf.constant([i + 1, 0]))[0].numpy()
      times[mode].append(time.perf_counter() - start)
    print(f"round {i}: " + ", ".join(f"{m} {times[m][-1]:.3f} s" for m in modes), flush=True)
  first_mode, last_mode = modes[0], modes[-1]
  ratios = np.array(times[first_mode]) / np.array(times[last_mode])  # paired by round
  print(", ".join(f"{m} median {np.median(times[m]):.3f} s" for m in modes) +
        f"; {first_mode}/{last_mode} per round: median {np.median(ratios):.3f}, range "
        f"{ratios.min():.3f}-{ratios.max():.3f}", flush=True)


if __name__ == "__main__":
  main()
