"""One convolution's time in a TensorFlow graph and compiled by XLA, on this machine.

Why a compiled step can lose on a CPU: a flow's training step is mostly 3x3
convolutions (Glow's and DenseFlow's coupling networks), which the graph runs
through TensorFlow's own kernels (oneDNN's where TensorFlow turns it on: by default
on some x86 CPUs only; the first line says) and XLA:CPU through its own. Each shape
is timed forward, and forward with both gradients (input and kernel), as a
`tf.function` without and with `jit_compile`, side by side in one process: the mean
of `--iters` calls after two warm-up calls.

    python benchmarks/conv_xla.py
"""

import argparse
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (batch, height = width, input channels, output channels): Glow's CIFAR-10 width-512
# steps at batch 64 and 16, a DenseFlow dense-block layer, a wide layer on few channels
SHAPES = [(64, 16, 512, 512), (16, 16, 512, 512), (8, 16, 496, 64), (64, 8, 48, 512)]


def _ms(fn, args, iters):
  for _ in range(2):
    fn(*args).numpy()
  start = time.perf_counter()
  for _ in range(iters):
    out = fn(*args)
  out.numpy()
  return (time.perf_counter() - start) / iters * 1e3


def main():
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--iters", type=int, default=20)
  args = p.parse_args()
  import tensorflow as tf

  def forward(x, w):
    return tf.reduce_sum(tf.nn.conv2d(x, w, 1, "SAME"))

  def both(x, w):
    with tf.GradientTape() as tape:
      tape.watch([x, w])
      y = tf.nn.conv2d(x, w, 1, "SAME")
      loss = tf.reduce_sum(y * y)
    dx, dw = tape.gradient(loss, [x, w])
    return tf.reduce_sum(dx) + tf.reduce_sum(dw)

  from tensorflow.python.util import _pywrap_util_port
  # TensorFlow runs its graph convolutions through oneDNN by default on some x86 CPUs
  # only (TF_ENABLE_ONEDNN_OPTS=1 forces it, =0 turns it off); XLA never uses it
  print(f"3x3 convolution, SAME, float32; mean of {args.iters} calls (ms); "
        f"cpus {os.cpu_count()}; the graph's oneDNN: "
        f"{'on' if _pywrap_util_port.IsMklEnabled() else 'off'} "
        f"(TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')})")
  print(f"{'batch':>5} {'size':>5} {'in':>4} {'out':>4} | {'forward graph':>13} {'xla':>7} "
        f"{'xla/graph':>9} | {'fwd+grads graph':>15} {'xla':>7} {'xla/graph':>9}")
  for batch, size, cin, cout in SHAPES:
    x = tf.random.stateless_normal([batch, size, size, cin], [0, 1])
    w = tf.random.stateless_normal([3, 3, cin, cout], [0, 2]) * 0.01
    row = []
    for fn in (forward, both):
      graph = _ms(tf.function(fn), (x, w), args.iters)
      xla = _ms(tf.function(fn, jit_compile=True), (x, w), args.iters)
      row.append((graph, xla))
    (fg, fx), (bg, bx) = row
    print(f"{batch:>5} {size:>5} {cin:>4} {cout:>4} | {fg:13.1f} {fx:7.1f} {fx / fg:9.2f} | "
          f"{bg:15.1f} {bx:7.1f} {bx / bg:9.2f}", flush=True)


if __name__ == "__main__":
  main()
