"""DenseFlow training throughput, sampling time and peak memory, XLA off and on.

Every cell (config, batch, XLA) runs in its own process so that its peak
resident memory (`ru_maxrss`) is its own. A training step is what `gflow-train`
runs: the single-sample bound in bits/dim of a batch of random 8-bit 32x32x3
images (variational dequantization, augmentation noise, BatchNorm in training
mode) → gradients → one Adamax update, in one `tf.function`
(`jit_compile` off/on, or XLA per shared module: `--xla=modules`, `train.jit_scope`),
with `--remat` on/off (`train.remat`: each glow-like
module recomputed in the backward pass) and `--shared_traces` on/off
(`train.shared_traces`: one trace per distinct module, the DenseFlow default) and
`--stack_modules` on/off (`model.stack_modules`, the default on), its own
graph optimised at `--step_graph` (`train.step_graph`, default auto) and glibc's
malloc arenas capped as gflow's binaries cap them (`gflow.malloc_arenas`). The
model and optimizer are built ("build s"), the step traced ("trace s": the Python trace
and the gradient graph), the model initialised from the batch while TensorFlow
instantiates the step in the background (as `gflow-train` does,
`gflow.train.instantiation`), and the step warmed up `--warmup` times ("compile s",
counted from the start of the trace: tracing, init and instantiation, Grappler or XLA,
the first run); "1st step s" counts from the process's start (imports, build, trace,
init, compile, first run). Then
`--iters` steps are timed with `.numpy()` on each loss. Sampling draws
`--samples` images at temperature 1 in one `tf.function` (XLA off), timed
after one warm-up call.

    python benchmarks/denseflow_step.py                      # 74-10 and 45-6, batch 8 and 64
    python benchmarks/denseflow_step.py --configs=45-6 --batches=8 --xla=off --iters=2
    python benchmarks/denseflow_step.py --configs=74-10 --batches=8,64 --xla=on --remat=off,on

Peak memory is the process's `ru_maxrss`, and per phase (build, trace, first call,
steps, sampling) from a thread reading the resident set every 10 ms.

The reference PyTorch DenseFlow, side by side: `reference_denseflow_step.py` (its
own environment; the same cells, the same columns where they apply).
"""

import argparse
import json
import os
import subprocess
import sys
import time

CONFIGS = {"74-10": "cifar10", "45-6": "cifar10_45_6"}
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  p.add_argument("--configs", default="74-10,45-6", help="subset of 74-10,45-6")
  p.add_argument("--batches", default="8,64")
  p.add_argument("--xla", default="off,on", help="any of off, on (XLA compiles the whole "
                 "step) and modules (each shared module trace: train.jit_scope=modules)")
  p.add_argument("--remat", default="off", help="off, on or off,on")
  p.add_argument("--shared_traces", default="on", help="off, on or off,on "
                 "(train.shared_traces: one trace per distinct module)")
  p.add_argument("--warmup", type=int, default=1)
  p.add_argument("--iters", type=int, default=3)
  p.add_argument("--samples", type=int, default=128, help="0: skip sampling")
  p.add_argument("--network_dtype", default="", help="e.g. mixed_bfloat16")
  p.add_argument("--stack_modules", default="on", choices=("on", "off"),
                 help="model.stack_modules: each unit's modules with their variables stacked")
  p.add_argument("--step_graph", default="auto",
                 help="train.step_graph: auto, full or light (Grappler on the step's graph)")
  p.add_argument("--cell", default="", help=argparse.SUPPRESS)  # config,batch,xla,remat,shared
  return p.parse_args(argv)


class PhasePeaks:
  """Peak resident memory per phase of a process, from a thread reading /proc/self/statm
  every 10 ms (`ru_maxrss` gives only the overall peak)."""

  def __init__(self):
    import threading
    self.phase, self.peaks = "start", {}
    self._page = os.sysconf("SC_PAGE_SIZE")
    self._lock, self._stop = threading.Lock(), threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True)
    self._thread.start()

  def _rss(self):
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * self._page / 2 ** 30

  def _run(self):
    while not self._stop.wait(0.01):
      self._record()

  def _record(self):
    with self._lock:
      self.peaks[self.phase] = max(self.peaks.get(self.phase, 0.0), self._rss())

  def enter(self, phase):
    self._record()
    with self._lock:
      self.phase = phase

  def stop(self):
    self._stop.set()
    self._thread.join()
    self._record()
    return {k: round(v, 2) for k, v in self.peaks.items()}


def run_cell(args):
  launched = time.perf_counter()
  peaks = PhasePeaks()
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
  import resource

  from gflow.malloc_arenas import cap_malloc_arenas
  cap_malloc_arenas()  # as gflow's binaries do, first
  import keras
  import numpy as np
  import tensorflow as tf

  sys.path.insert(0, os.path.join(REPO, "configs"))
  import denseflow

  from gflow.layers import recompute_scope
  from gflow.layers.shared_trace import shared_trace_scope
  from gflow.noise import Noise
  from gflow.eager_variables import fast_variable_creation
  from gflow.train.graph_options import LightStep, resolve
  from gflow.train.instantiation import instantiating
  from gflow.train.trainer import OPTIMIZERS, build_model

  name, batch, xla_scope, remat, shared = args.cell.split(",")
  batch, remat, shared = int(batch), remat == "on", shared == "on"
  xla, modules = xla_scope == "on", xla_scope == "modules"  # the whole step, or per module
  config = denseflow.get_config(CONFIGS[name])
  config.model.network_dtype = args.network_dtype
  config.model.stack_modules = args.stack_modules == "on"
  peaks.enter("build")
  t0 = time.perf_counter()
  model = build_model(config, (32, 32, 3))
  rng = np.random.default_rng(0)
  x = tf.constant(rng.integers(0, 256, (batch, 32, 32, 3)) + rng.random((batch, 32, 32, 3)),
                  tf.float32)
  variables = list(model.trainable_variables)
  opt = OPTIMIZERS["adamax"](1e-3)  # what gflow-train uses, as it builds it
  with fast_variable_creation():
    opt.build(variables)
  built = time.perf_counter() - t0

  def step(x, seed):
    with (tf.GradientTape() as tape, shared_trace_scope(shared, jit_compile=modules),
          recompute_scope(remat, xla=xla)):
      loss = tf.reduce_mean(model.bits_per_dim(x, seed=Noise(seed), training=True))
    opt.apply(tape.gradient(loss, variables), variables)
    return loss

  traced_step = tf.function(step, jit_compile=xla, autograph=model.autograph)  # as gflow-train
  step = traced_step  # called as gflow-train calls it (train.step_graph)
  if resolve(args.step_graph, shared and not xla) == "light":
    step = LightStep(traced_step)
  peaks.enter("trace")
  t0 = time.perf_counter()
  concrete = traced_step.get_concrete_function(x, tf.constant([0, 0]))
  traced = time.perf_counter() - t0
  peaks.enter("first")
  # as gflow-train: the data-dependent init runs while TensorFlow instantiates the step
  options = step.call_options() if isinstance(step, LightStep) else None
  with instantiating(concrete, (x, tf.constant([0, 0])), options):
    model.initialize(x)
  for i in range(args.warmup):
    step(x, tf.constant([i, 0])).numpy()
  first = time.perf_counter() - t0
  to_first_step = time.perf_counter() - launched  # imports, build, trace, init, compile
  peaks.enter("steps")
  times = []
  for i in range(args.iters):
    t0 = time.perf_counter()
    loss = float(step(x, tf.constant([i, 1])).numpy())
    times.append(time.perf_counter() - t0)
  out = dict(config=name, batch=batch, xla=xla_scope, remat=remat, shared=shared,
             params=int(sum(np.prod(v.shape) for v in variables)),
             build_s=built, trace_s=traced, compile_s=first, first_step_s=to_first_step,
             step_s=float(np.median(times)), loss=loss)
  if args.samples:
    peaks.enter("sample")
    sample = tf.function(lambda seed: model.sample(args.samples, seed=seed))
    sample(tf.constant([0, 0])).numpy()
    t0 = time.perf_counter()
    sample(tf.constant([1, 0])).numpy()
    out["sample_s"] = time.perf_counter() - t0
  out["peak_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
  out["phase_peaks_gib"] = peaks.stop()
  print(json.dumps(out))


def main():
  args = parse_args()
  if args.cell:
    return run_cell(args)
  import platform
  print(f"DenseFlow training step at 32x32x3: configs {args.configs}, batches {args.batches}, "
        f"xla {args.xla}, remat {args.remat}, shared traces {args.shared_traces}, warm-up {args.warmup}, timed iters {args.iters} (median), "
        f"samples {args.samples}, network dtype {args.network_dtype or 'float32'}, "
        f"step graph {args.step_graph}, stacked modules {args.stack_modules}")
  print(f"python {platform.python_version()}, cpus {os.cpu_count()}")
  print(f"{'config':7} {'batch':>5} {'xla':>7} {'remat':>5} {'shared':>6} {'params':>12} {'s/step':>8} {'img/s':>7} "
        f"{'build s':>7} {'trace s':>7} {'compile s':>9} {'1st step s':>10} {'sample s':>8} "
        f"{'peak GiB':>8}  peak GiB by phase")
  for name in args.configs.split(","):
    for batch in args.batches.split(","):
      for xla in args.xla.split(","):
        for remat, shared in [(r, t) for r in args.remat.split(",")
                              for t in args.shared_traces.split(",")]:
          cell = f"{name},{batch},{xla},{remat},{shared}"
          sampled = xla == "off" and cell.endswith(
              f",{args.remat.split(',')[0]},{args.shared_traces.split(',')[0]}")
          cmd = [sys.executable, __file__, f"--cell={cell}", f"--warmup={args.warmup}",
                 f"--iters={args.iters}", f"--samples={args.samples if sampled else 0}",
                 f"--network_dtype={args.network_dtype}", f"--step_graph={args.step_graph}",
                 f"--stack_modules={args.stack_modules}"]
          proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
          if proc.returncode:
            reason = (proc.stderr.strip().splitlines() or ["?"])[-1][:100]
            print(f"{name:7} {batch:>5} {xla:>7} {remat:>5} {shared:>6}  failed: {reason}",
                  flush=True)
            continue
          r = json.loads(proc.stdout.strip().splitlines()[-1])
          sample = f"{r['sample_s']:8.2f}" if "sample_s" in r else f"{'-':>8}"
          print(f"{name:7} {batch:>5} {xla:>7} {remat:>5} {shared:>6} {r['params']:>12,} "
                f"{r['step_s']:8.2f} {r['batch'] / r['step_s']:7.2f} {r['build_s']:7.1f} "
                f"{r['trace_s']:7.1f} {r['compile_s']:9.1f} "
                f"{r['first_step_s']:10.1f} "
                f"{sample} {r['peak_gib']:8.2f}  {_phases(r['phase_peaks_gib'])}", flush=True)


def _phases(peaks):
  return " ".join(f"{k} {v:.2f}" for k, v in peaks.items() if k != "start")


if __name__ == "__main__":
  main()
