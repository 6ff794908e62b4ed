"""WaveFlow synthesis speed (kHz, × real time) and peak memory; training samples/s.

Every cell runs in its own process so that its peak resident memory (`ru_maxrss`)
is its own. Synthesis is what `gflow-sample --mel` runs: K · h row steps with each
residual layer's row cache, in one `tf.function` (XLA off or on), from a random
log-mel of `--seconds` of audio; it is warmed up once, then timed `--iters` times.
A training step is what `gflow-train` runs: the loss of a batch of 16,000-sample
segments → gradients → one Adam update, in one `tf.function`.

    python benchmarks/waveflow_synthesis.py                  # WaveFlow-64, h = 16, batch 1 and 8
    python benchmarks/waveflow_synthesis.py --batches=1 --xla=off --seconds=1 --train=0

For scale (ISSUE 10): the paper synthesises at 939 kHz on a V100 (WaveFlow-64).
Weights are random (the speed does not depend on them).
"""

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--config", default="ljspeech_64")
  p.add_argument("--height", type=int, default=16)
  p.add_argument("--batches", default="1,8")
  p.add_argument("--xla", default="off,on")
  p.add_argument("--seconds", type=float, default=1.0, help="audio per synthesised clip")
  p.add_argument("--iters", type=int, default=2)
  p.add_argument("--train", type=int, default=1, help="also time a training step (0: no)")
  p.add_argument("--cell", default="", help=argparse.SUPPRESS)  # kind,batch,xla (child)
  return p.parse_args(argv)


def _model(args):
  sys.path.insert(0, os.path.join(REPO, "configs"))
  import waveflow

  from gflow.train.trainer import build_model
  c = waveflow.get_config(args.config)
  c.model.height = args.height
  return c, build_model(c, (c.data.segment_length,))


def run_cell(args):
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import resource

  import keras
  import tensorflow as tf

  from gflow import examples
  from gflow.bijectors.fold import fold
  kind, batch, xla = args.cell.split(",")
  batch, xla = int(batch), xla == "on"
  config, model = _model(args)
  examples.randomize(model.layer, scale=0.05)
  out = dict(kind=kind, batch=batch, xla=xla)
  if kind == "synthesis":
    frames = int(args.seconds * config.data.mel.sample_rate) // model.hop
    mel = tf.random.stateless_normal([batch, frames, model.n_mels], [0, 1]) - 5.0
    length = frames * model.hop // model.height * model.height
    cond = fold(model.layer.upsampler(mel)[:, :length], model.height)
    z = tf.random.stateless_normal([batch, model.height, length // model.height, 1], [1, 2])
    fn = tf.function(model._synthesize, jit_compile=xla)
    start = time.perf_counter()
    fn(z, cond).numpy()
    out["first_call_s"] = time.perf_counter() - start
    times = []
    for _ in range(args.iters):
      start = time.perf_counter()
      fn(z, cond).numpy()
      times.append(time.perf_counter() - start)
    seconds = min(times)
    out["khz"] = batch * length / seconds / 1e3
    out["x_real_time"] = batch * length / config.data.mel.sample_rate / seconds
  else:
    t = config.data.segment_length
    frames = -(-t // model.hop)
    batch_data = {"x": tf.random.stateless_uniform([batch, t], [2, 3], -0.5, 0.5),
                  "conditioning": tf.random.stateless_normal([batch, frames, model.n_mels],
                                                             [3, 4]) - 5.0}
    opt = keras.optimizers.Adam(2e-4)
    variables = list(model.trainable_variables)
    opt.build(variables)

    @tf.function(jit_compile=xla)
    def step(b):
      with tf.GradientTape() as tape:
        loss = tf.reduce_mean(model.loss(b, None, training=True))
      opt.apply(tape.gradient(loss, variables), variables)
      return loss
    start = time.perf_counter()
    step(batch_data).numpy()
    out["first_call_s"] = time.perf_counter() - start
    times = []
    for _ in range(args.iters):
      start = time.perf_counter()
      step(batch_data).numpy()
      times.append(time.perf_counter() - start)
    out["samples_per_s"] = batch * t / min(times)
    out["s_per_step"] = min(times)
  out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  print(json.dumps(out))


def main():
  args = parse_args()
  if args.cell:
    return run_cell(args)
  cells = [("synthesis", b, x) for b in args.batches.split(",") for x in args.xla.split(",")]
  if args.train:
    cells += [("train", 8, x) for x in args.xla.split(",")]
  print(f"WaveFlow {args.config}, h = {args.height}, {args.seconds:g} s of audio per clip; "
        f"{os.cpu_count()} CPUs")
  for kind, batch, xla in cells:
    cmd = [sys.executable, __file__, f"--cell={kind},{batch},{xla}", f"--config={args.config}",
           f"--height={args.height}", f"--seconds={args.seconds}", f"--iters={args.iters}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    line = next((l for l in proc.stdout.splitlines() if l.startswith("{")), None)
    if line is None:
      print(f"{kind} batch {batch} XLA {xla}: failed\n{proc.stderr[-2000:]}")
      continue
    r = json.loads(line)
    if kind == "synthesis":
      print(f"synthesis batch {batch:>2} XLA {xla:>3}: {r['khz']:8.1f} kHz = "
            f"{r['x_real_time']:6.2f} × real time; first call {r['first_call_s']:.1f} s; "
            f"peak {r['peak_gib']:.2f} GiB")
    else:
      print(f"training  batch {batch:>2} XLA {xla:>3}: {r['samples_per_s'] / 1e3:8.1f} k "
            f"samples/s ({r['s_per_step']:.2f} s/step); first call {r['first_call_s']:.1f} s; "
            f"peak {r['peak_gib']:.2f} GiB")


if __name__ == "__main__":
  main()
